// Package routetable defines the gateway's route table file (deploy/gateway/routes.json): the
// compiler writes it from the manifests, the gateway reads it.
package routetable

import (
	"encoding/json"
	"path"
	"strings"
)

// Route is one externally reachable route.
type Route struct {
	Method     string `json:"method"`
	Path       string `json:"path"` // net/http-style pattern: {param} segments, a final {rest...}
	AppID      string `json:"appId"`
	Module     string `json:"module"`
	Permission string `json:"permission,omitempty"`
	Public     bool   `json:"public,omitempty"`
	Audit      bool   `json:"audit,omitempty"`
	BodyLimit  int64  `json:"bodyLimit,omitempty"` // bytes; 0: the gateway's default
	RateLimit  string `json:"rateLimit,omitempty"` // a rate-limit class of the gateway
	Summary    string `json:"summary,omitempty"`
	// Request names the request body's JSON Schema in File.Schemas; the gateway refuses a
	// body that breaks it.
	Request  string    `json:"request,omitempty"`
	Response *Response `json:"response,omitempty"`
}

// ResponseSchema is the name of the successful answer's schema ("" if none).
func (r Route) ResponseSchema() string {
	if r.Response == nil {
		return ""
	}
	return r.Response.Schema
}

// Response is a route's successful answer.
type Response struct {
	Status int    `json:"status"`
	Schema string `json:"schema,omitempty"` // a name in File.Schemas
}

// File is the whole table as stored.
type File struct {
	Generated string  `json:"generated"`
	Routes    []Route `json:"routes"`
	// Schemas are the request and response JSON Schemas the routes name, by name (the schema
	// file's name without .json, such as blog.post.input.v1).
	Schemas map[string]json.RawMessage `json:"schemas,omitempty"`
}

// SchemaName is the name a schema file is known by in File.Schemas and the API document.
func SchemaName(file string) string { return strings.TrimSuffix(path.Base(file), ".json") }
