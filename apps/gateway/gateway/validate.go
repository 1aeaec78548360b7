package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/goplt/goplt/internal/httpx"
)

// compileSchemas compiles the route table's JSON Schemas by name (formats asserted, as the
// kernel checks event payloads).
func compileSchemas(raw map[string]json.RawMessage) (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := make(map[string]*jsonschema.Schema, len(raw))
	for name, b := range raw {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		url := "https://goplt.dev/api/" + name + ".json"
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if out[name], err = c.Compile(url); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
	}
	return out, nil
}

var printer = message.NewPrinter(language.English)

// checkBody reads a request body of at most limit bytes and checks it against the route's
// schema; a body that passes is handed on unchanged. On failure it has answered: 413
// body_too_large, 400 invalid_json (not one JSON value), or 400 invalid_body with the JSON
// pointer of the first part at fault.
func checkBody(w http.ResponseWriter, r *http.Request, sch *jsonschema.Schema, limit int64) bool {
	b, ok := readBody(w, r, limit)
	if !ok || !checkJSON(w, r, sch, b) {
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return true
}

// readBody reads a request body of at most limit bytes; on failure it has answered.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, r, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", limit))
		} else {
			writeError(w, r, http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// checkJSON checks a body against a schema; on failure it has answered.
func checkJSON(w http.ResponseWriter, r *http.Request, sch *jsonschema.Schema, b []byte) bool {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_json", "request body is not one JSON value: "+err.Error())
		return false
	}
	if err := sch.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			writeError(w, r, http.StatusBadRequest, "invalid_body", err.Error())
			return false
		}
		pointer, msg := firstFault(ve)
		w.Header().Set("Cache-Control", "no-store")
		httpx.WriteErrorAt(w, r, http.StatusBadRequest, "invalid_body", msg, pointer)
		return false
	}
	return true
}

// firstFault follows a validation error to its first leaf: the most specific place at fault.
// A missing or unexpected property is pointed at by name.
func firstFault(ve *jsonschema.ValidationError) (pointer, msg string) {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	loc := ve.InstanceLocation
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		if len(k.Missing) > 0 {
			loc = append(loc[:len(loc):len(loc)], k.Missing[0])
		}
	case *kind.AdditionalProperties:
		if len(k.Properties) > 0 {
			loc = append(loc[:len(loc):len(loc)], k.Properties[0])
		}
	}
	var p strings.Builder
	for _, s := range loc {
		p.WriteByte('/')
		p.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(s))
	}
	return p.String(), ve.ErrorKind.LocalizedString(printer)
}
