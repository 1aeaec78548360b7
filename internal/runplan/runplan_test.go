package runplan

import (
	"strings"
	"testing"
)

func TestParseAndOrder(t *testing.T) {
	p, err := Parse("plan.yaml", []byte(`apiVersion: goplt/v1
kind: RunPlan
apps:
  - {id: gateway, build: ./apps/gateway, config: c.yaml, dependsOn: [blog, auth]}
  - {id: blog, build: ./apps/blog, config: c.yaml, dependsOn: [identity]}
  - {id: auth, build: ./apps/auth, config: c.yaml, dependsOn: [identity]}
  - {id: identity, build: ./apps/identity, config: c.yaml}
`))
	if err != nil {
		t.Fatal(err)
	}
	order, err := p.Order()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, ","), "identity,auth,blog,gateway"; got != want {
		t.Fatalf("order = %s", got)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	for _, a := range p.Apps {
		for _, d := range a.DependsOn {
			if pos[d] > pos[a.ID] {
				t.Errorf("%s starts before its dependency %s", a.ID, d)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	head := "apiVersion: goplt/v1\nkind: RunPlan\n"
	cases := map[string]struct{ doc, want string }{
		"unknown field": {head + "apps:\n  - {id: a, config: c, colour: red}\n", "field colour not found"},
		"cycle":         {head + "apps:\n  - {id: a, config: c, dependsOn: [b]}\n  - {id: b, config: c, dependsOn: [a]}\n", "dependency cycle: a -> b -> a"},
		"unknown dep":   {head + "apps:\n  - {id: a, config: c, dependsOn: [zz]}\n", `depends on "zz", which is not in the plan`},
		"duplicate":     {head + "apps:\n  - {id: a, config: c}\n  - {id: a, config: c}\n", `app id "a" appears twice`},
		"no config":     {head + "apps:\n  - {id: a}\n", "config (the sidecar's Dapr Configuration file) is required"},
		"wrong kind":    {"apiVersion: goplt/v1\nkind: Module\n", `want apiVersion "goplt/v1" and kind "RunPlan"`},
		"bad restart":   {head + "apps:\n  - {id: a, config: c, restart: sometimes}\n", "restart must be on-failure or never"},
		"both":          {head + "apps:\n  - {id: a, config: c, build: ./x, command: [x]}\n", "set build or command, not both"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("plan.yaml", []byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "plan.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}
