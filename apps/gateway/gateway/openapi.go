package gateway

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// OpenAPI returns an OpenAPI 3.1 document of the route table: every route with its summary,
// path parameters, whether it needs a bearer token, its permission (x-goplt-permission), and
// the request and response schemas the manifests declare (components.schemas, by name).
// server is the gateway's base URL as its clients reach it. The document is built once per
// table (its schemas decoded once); each call only names the server.
func OpenAPI(t *Table, server string) map[string]any {
	t.openapiOnce.Do(func() { t.openapi = openAPI(t) })
	doc := maps.Clone(t.openapi)
	doc["servers"] = []map[string]string{{"url": server, "description": "this gateway"}}
	return doc
}

// openAPI builds the document without its servers.
func openAPI(t *Table) map[string]any {
	paths := map[string]map[string]any{}
	var tags []string
	errorRef := map[string]any{"application/json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/Error"}}}
	for _, r := range t.Routes {
		p := strings.ReplaceAll(r.Path, "...}", "}")
		var params []map[string]any
		for _, s := range strings.Split(p, "/") {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				params = append(params, map[string]any{"name": s[1 : len(s)-1], "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
			}
		}
		summary := r.Summary
		if summary == "" {
			summary = r.Method + " " + r.Path
		}
		responses := map[string]any{
			"4XX":     map[string]any{"description": "refused: the error's code says why (invalid_body carries a JSON pointer)", "content": errorRef},
			"default": map[string]any{"description": "an error of the gateway or the module", "content": errorRef},
		}
		if r.Response != nil && r.Response.Schema != "" {
			responses[strconv.Itoa(r.Response.Status)] = map[string]any{"description": "success", "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/" + r.Response.Schema}}}}
		} else {
			responses["2XX"] = map[string]any{"description": "success: the module's answer"}
		}
		op := map[string]any{
			"summary":     summary,
			"operationId": r.Module + "." + strings.ToLower(r.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_").Replace(p),
			"tags":        []string{r.Module},
			"responses":   responses,
		}
		if !slices.Contains(tags, r.Module) {
			tags = append(tags, r.Module)
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.Request != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/" + r.Request}}}}
		}
		if r.Public {
			op["security"] = []any{}
		} else {
			op["security"] = []map[string][]string{{"bearer": {}}}
			op["x-goplt-permission"] = r.Permission
		}
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(r.Method)] = op
	}
	slices.Sort(tags)
	var tagList []map[string]string
	for _, tg := range tags {
		tagList = append(tagList, map[string]string{"name": tg, "description": "Routes of the " + tg + " module"})
	}
	schemas := map[string]any{"Error": map[string]any{"type": "object", "required": []string{"error"}, "properties": map[string]any{"error": map[string]any{
		"type": "object", "required": []string{"code", "message"},
		"properties": map[string]any{
			"code": map[string]string{"type": "string"}, "message": map[string]string{"type": "string"}, "requestId": map[string]string{"type": "string"},
			"pointer": map[string]string{"type": "string", "description": "JSON pointer to the part of the request body at fault"}}}}}}
	for name, raw := range t.Schemas {
		var s map[string]any
		if json.Unmarshal(raw, &s) == nil {
			delete(s, "$schema") // the document's dialect is OpenAPI 3.1's, JSON Schema 2020-12
			delete(s, "$id")
			schemas[name] = s
		}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "goplt API",
			"version":     "1",
			"description": "Every route the platform's modules expose through the gateway, compiled from their manifests.",
		},
		"tags":  tagList,
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
			"schemas":         schemas,
		},
	}
}

// serverURL is the gateway's base URL as the client reached it.
func serverURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
