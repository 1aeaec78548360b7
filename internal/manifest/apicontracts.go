package manifest

import (
	"fmt"
	"path/filepath"

	"github.com/goplt/goplt/internal/routetable"
)

// apiContracts checks the request and response schemas routes name: files inside the
// repository that compile as JSON Schemas, a request body only where the method carries one
// and the gateway sees the route (it is the gateway that enforces the schema).
func (ck *checker) apiContracts() {
	names := map[string]string{} // schema name -> file: the API document knows schemas by name
	for _, m := range ck.set.Modules {
		for i, r := range m.Spec.Routes {
			ptr := fmt.Sprintf("/spec/routes/%d", i)
			if r.Request != "" {
				switch {
				case r.Method != "POST" && r.Method != "PUT" && r.Method != "PATCH":
					ck.add(m.PosOf(ptr+"/request"), "route-request", "remove request: only POST, PUT and PATCH requests carry a body", "route %s %s names a request schema", r.Method, r.Path)
				case len(r.Callers) > 0:
					ck.add(m.PosOf(ptr+"/request"), "route-request", "remove request, or validate the body in the handler: the gateway enforces request schemas and never sees an internal route",
						"internal route %s %s names a request schema nothing would enforce", r.Method, r.Path)
				}
				ck.schemaFile(m, ptr+"/request", r.Request, names)
			}
			if r.Response != nil {
				ck.schemaFile(m, ptr+"/response/schema", r.Response.Schema, names)
			}
		}
	}
}

// schemaFile checks that a route's schema file is inside the repository and compiles.
func (ck *checker) schemaFile(m *Module, ptr, rel string, names map[string]string) {
	name := routetable.SchemaName(rel)
	if prev, ok := names[name]; ok && prev != rel {
		ck.add(m.PosOf(ptr), "api-schema-name", "rename one file: the API document names schemas by file name", "schema %s has the name %s of %s", rel, name, prev)
	}
	names[name] = rel
	if err := inRepo(ck.set.Root, rel); err != nil {
		ck.add(m.PosOf(ptr), "path-in-repository", "name a path inside the repository, relative to its root", "%v", err)
	} else if err := checkJSONSchemaFile(filepath.Join(ck.set.Root, rel)); err != nil {
		ck.add(m.PosOf(ptr), "api-schema", "point to a JSON Schema file relative to the repository root", "schema %s: %v", rel, err)
	}
}
