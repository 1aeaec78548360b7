package gateway

import (
	"strings"
)

// OpenAPI returns an OpenAPI 3.1 document of the route table: every route with its path
// parameters, whether it needs a bearer token, and its permission (x-goplt-permission).
func OpenAPI(t *Table) map[string]any {
	paths := map[string]map[string]any{}
	for _, r := range t.Routes {
		p := strings.ReplaceAll(r.Path, "...}", "}")
		var params []map[string]any
		for _, s := range strings.Split(p, "/") {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				params = append(params, map[string]any{"name": s[1 : len(s)-1], "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
			}
		}
		op := map[string]any{
			"operationId": r.Module + "." + strings.ToLower(r.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_").Replace(p),
			"tags":        []string{r.Module},
			"responses": map[string]any{
				"default": map[string]any{"description": "the module's answer, or an error", "content": map[string]any{
					"application/json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/Error"}}}},
			},
		}
		if len(params) > 0 {
			op["parameters"] = params
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
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]string{"title": "goplt API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
			"schemas": map[string]any{"Error": map[string]any{"type": "object", "properties": map[string]any{"error": map[string]any{
				"type": "object", "required": []string{"code", "message"},
				"properties": map[string]any{"code": map[string]string{"type": "string"}, "message": map[string]string{"type": "string"}, "requestId": map[string]string{"type": "string"}}}}}},
		},
	}
}
