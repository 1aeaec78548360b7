package compile

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/goplt/goplt/internal/routetable"
)

// routes writes the gateway's route table: every route it exposes, with the request and
// response schemas they name.
func (g *gen) routes() error {
	var rs []routetable.Route
	schemas := map[string]json.RawMessage{}
	files := map[string]string{} // schema name -> file, to refuse two files of one name
	schema := func(file string) (string, error) {
		name := routetable.SchemaName(file)
		if prev, ok := files[name]; ok && prev != file {
			return "", fmt.Errorf("schemas %s and %s share the name %s: rename one", prev, file, name)
		}
		raw, err := g.compactSchema(file)
		if err != nil {
			return "", err
		}
		files[name], schemas[name] = file, json.RawMessage(raw)
		return name, nil
	}
	for _, m := range g.set.Modules {
		for i, r := range m.Spec.Routes {
			if len(r.Callers) > 0 {
				continue // internal: never exposed by the gateway
			}
			g.from("route "+r.Method+" "+r.Path, m.PosOf(fmt.Sprintf("/spec/routes/%d", i)))
			rt := routetable.Route{Method: r.Method, Path: r.Path, AppID: m.Spec.App.ID, Module: m.Metadata.Name,
				Permission: r.Permission, Public: r.Public, Audit: r.Audit, BodyLimit: int64(r.BodyLimit), RateLimit: r.RateLimit,
				Summary: r.Summary}
			if r.Request != "" {
				name, err := schema(r.Request)
				if err != nil {
					return err
				}
				rt.Request = name
			}
			if r.Response != nil {
				name, err := schema(r.Response.Schema)
				if err != nil {
					return err
				}
				rt.Response = &routetable.Response{Status: r.Response.SuccessStatus(), Schema: name}
			}
			rs = append(rs, rt)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Path != rs[j].Path {
			return rs[i].Path < rs[j].Path
		}
		return rs[i].Method < rs[j].Method
	})
	if len(schemas) == 0 {
		schemas = nil
	}
	g.emitJSON(RoutesFile, routetable.File{Generated: jsonMarker, Routes: rs, Schemas: schemas})
	return nil
}
