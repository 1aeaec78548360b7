// Package runplan defines the local run plan: which apps `goplt run` starts, with which Dapr
// configuration and resources, in which dependency order. The manifest compiler generates it
// (deploy/local/runplan.yaml); it can also be written by hand.
package runplan

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// APIVersion and Kind identify a run plan document.
const (
	APIVersion = "goplt/v1"
	Kind       = "RunPlan"
)

// Plan is a run plan document.
type Plan struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Apps       []App  `yaml:"apps"`
}

// App is one app and its sidecar.
type App struct {
	// ID is the Dapr app id (also the Consul service name).
	ID string `yaml:"id"`
	// Build is a Go package (relative to the repository root) that goplt builds and runs.
	Build string `yaml:"build,omitempty"`
	// Command runs the app instead of Build. Neither means a sidecar without an app.
	Command []string `yaml:"command,omitempty"`
	// AppPort is the app's HTTP port; 0 lets goplt choose a free one.
	AppPort int `yaml:"appPort,omitempty"`
	// HealthPath is polled until it answers 2xx before dependents start. Default /readyz.
	HealthPath string `yaml:"healthPath,omitempty"`
	// DependsOn lists app ids that must be ready first.
	DependsOn []string `yaml:"dependsOn,omitempty"`
	// Config is the Dapr Configuration file for the sidecar.
	Config string `yaml:"config"`
	// Resources are folders of Dapr components, subscriptions and resiliency policies.
	Resources []string `yaml:"resources,omitempty"`
	// Replicas is how many instances to start (0 and 1 mean one), each with its own sidecar and
	// ports, sharing the app id.
	Replicas int `yaml:"replicas,omitempty"`
	// Env is extra environment for the app.
	Env map[string]string `yaml:"env,omitempty"`
	// Restart is "on-failure" (default: restart up to MaxRestarts times) or "never" (a crash
	// stops the whole run).
	Restart     string `yaml:"restart,omitempty"`
	MaxRestarts int    `yaml:"maxRestarts,omitempty"`
}

// HasApp reports whether the entry runs an app process (not only a sidecar).
func (a App) HasApp() bool { return a.Build != "" || len(a.Command) > 0 }

// Load reads and validates a plan file.
func Load(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read run plan: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes a plan strictly (unknown fields are errors) and validates it.
func Parse(name string, b []byte) (*Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &p, nil
}

// Validate checks identity, references and the dependency graph.
func (p *Plan) Validate() error {
	if p.APIVersion != APIVersion || p.Kind != Kind {
		return fmt.Errorf("want apiVersion %q and kind %q, got %q and %q", APIVersion, Kind, p.APIVersion, p.Kind)
	}
	ids := map[string]bool{}
	for i, a := range p.Apps {
		if a.ID == "" {
			return fmt.Errorf("apps[%d]: id is required", i)
		}
		if ids[a.ID] {
			return fmt.Errorf("apps[%d]: app id %q appears twice", i, a.ID)
		}
		ids[a.ID] = true
		if a.Build != "" && len(a.Command) > 0 {
			return fmt.Errorf("app %q: set build or command, not both", a.ID)
		}
		if a.Config == "" {
			return fmt.Errorf("app %q: config (the sidecar's Dapr Configuration file) is required", a.ID)
		}
		switch a.Restart {
		case "", "on-failure", "never":
		default:
			return fmt.Errorf("app %q: restart must be on-failure or never, not %q", a.ID, a.Restart)
		}
		if a.Replicas < 0 || (a.Replicas > 1 && (a.AppPort != 0 || !a.HasApp())) {
			return fmt.Errorf("app %q: %d replicas need an app without a fixed port", a.ID, a.Replicas)
		}
	}
	for _, a := range p.Apps {
		for _, d := range a.DependsOn {
			if !ids[d] {
				return fmt.Errorf("app %q depends on %q, which is not in the plan", a.ID, d)
			}
		}
	}
	_, err := p.Order()
	return err
}

// Order returns the app ids in dependency order (dependencies first; ties by id), or an error
// naming a cycle.
func (p *Plan) Order() ([]string, error) {
	deps := map[string][]string{}
	for _, a := range p.Apps {
		deps[a.ID] = a.DependsOn
	}
	ids := make([]string, 0, len(deps))
	for id := range deps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order, stack []string
	var visit func(string) error
	visit = func(id string) error {
		switch state[id] {
		case done:
			return nil
		case visiting:
			i := slices.Index(stack, id)
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(stack[i:], id), " -> "))
		}
		state[id] = visiting
		stack = append(stack, id)
		ds := slices.Clone(deps[id])
		sort.Strings(ds)
		for _, d := range ds {
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		order = append(order, id)
		return nil
	}
	for _, id := range ids {
		if err := visit(id); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// App returns the entry for an app id.
func (p *Plan) App(id string) (App, bool) {
	for _, a := range p.Apps {
		if a.ID == id {
			return a, true
		}
	}
	return App{}, false
}
