// Package routetable defines the gateway's route table file (deploy/gateway/routes.json): the
// compiler writes it from the manifests, the gateway reads it.
package routetable

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
}

// File is the whole table as stored.
type File struct {
	Generated string  `json:"generated"`
	Routes    []Route `json:"routes"`
}
