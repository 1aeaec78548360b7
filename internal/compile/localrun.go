// The local profile's run plan and Dapr CLI run file.

package compile

import (
	"fmt"
	"path"
	"sort"

	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/runplan"
)

func (g *gen) runPlan() error {
	plan := runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind}
	var all []string
	for _, name := range g.set.Order() {
		m := g.set.Module(name)
		a := runplan.App{
			ID: m.Spec.App.ID, Build: m.Spec.App.Build, Command: m.Spec.App.Command,
			AppPort: m.Spec.App.Port, HealthPath: m.Spec.App.HealthPath, Restart: m.Spec.App.Restart, Replicas: m.Spec.App.Replicas,
			Config: path.Join(LocalDeploy, "config", m.Spec.App.ID+".yaml"), Resources: []string{LocalComponents},
		}
		for _, d := range m.Spec.DependsOn {
			a.DependsOn = append(a.DependsOn, g.set.Module(d.Name).Spec.App.ID)
		}
		sort.Strings(a.DependsOn)
		a.Env = g.withProfileEnv(m, AppEnv(m))
		plan.Apps = append(plan.Apps, a)
		all = append(all, a.ID)
		g.from("apps: "+a.ID, m.PosOf("/spec/app"))
	}
	for _, c := range g.prof.DevCallers {
		plan.Apps = append(plan.Apps, runplan.App{ID: c, Config: path.Join(LocalDeploy, "config", c+".yaml"),
			Resources: []string{LocalComponents}, DependsOn: sorted(all)})
	}
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("generated run plan is invalid: %w", err)
	}
	g.emit(RunPlanFile, plan)
	return nil
}

// daprRunFile is the `dapr run -f` multi-app template, for users of the Dapr CLI.
func (g *gen) daprRunFile() {
	type app struct {
		AppID          string            `yaml:"appID"`
		AppDirPath     string            `yaml:"appDirPath"`
		ResourcesPaths []string          `yaml:"resourcesPaths"`
		ConfigFilePath string            `yaml:"configFilePath"`
		AppProtocol    string            `yaml:"appProtocol,omitempty"`
		AppPort        int               `yaml:"appPort,omitempty"`
		EnableHealth   bool              `yaml:"enableAppHealthCheck,omitempty"`
		HealthPath     string            `yaml:"appHealthCheckPath,omitempty"`
		Command        []string          `yaml:"command,omitempty"`
		Env            map[string]string `yaml:"env,omitempty"`
		// No actors, no jobs: empty turns off the placement and scheduler connections the
		// Dapr CLI otherwise points at localhost (nothing listens there).
		Placement *string `yaml:"placementHostAddress"`
		Scheduler *string `yaml:"schedulerHostAddress"`
	}
	none := new(string)
	var apps []app
	port := 8100
	for _, name := range g.set.Order() {
		m := g.set.Module(name)
		// The Dapr CLI resolves resourcesPaths and configFilePath against appDirPath, and
		// appDirPath against this file's folder.
		a := app{AppID: m.Spec.App.ID, AppDirPath: "../../", ResourcesPaths: []string{LocalComponents},
			ConfigFilePath: path.Join(g.configDir, m.Spec.App.ID+".yaml"), AppProtocol: "http", EnableHealth: true, HealthPath: "/healthz",
			Placement: none, Scheduler: none}
		// The Dapr CLI needs fixed ports: the manifest's, or one per app from 8100 in order.
		a.AppPort = m.Spec.App.Port
		if a.AppPort == 0 {
			a.AppPort = port
			port++
		}
		g.from("apps: "+a.AppID, m.PosOf("/spec/app"))
		if m.Spec.App.Build != "" {
			a.Command = []string{"go", "run", m.Spec.App.Build}
		} else {
			a.Command = m.Spec.App.Command
		}
		a.Env = g.withProfileEnv(m, AppEnv(m))
		if a.Env == nil {
			a.Env = map[string]string{}
		}
		a.Env["APP_PORT"] = fmt.Sprint(a.AppPort)
		if g.prof.TracingSamplingRate != "" {
			// For the traces the app starts (the gateway starts every request's); goplt run
			// sets it from each sidecar's rendered configuration instead.
			a.Env[envvar.TraceSamplingRate] = g.prof.TracingSamplingRate
		}
		if g.prof.OTLPEndpoint != "" {
			a.Env[envvar.OTLPEndpoint] = "http://" + g.prof.OTLPEndpoint
		}
		apps = append(apps, a)
	}
	// The development callers: sidecars without an app, for dapr invoke and curl.
	for _, c := range g.prof.DevCallers {
		apps = append(apps, app{AppID: c, AppDirPath: "../../", ResourcesPaths: []string{LocalComponents},
			ConfigFilePath: path.Join(g.configDir, c+".yaml"), Placement: none, Scheduler: none})
		g.fromPlatform("apps: "+c+" (a development caller)", "/devCallers")
	}
	doc := struct {
		Version int   `yaml:"version"`
		Apps    []app `yaml:"apps"`
	}{Version: 1, Apps: apps}
	g.emitNote(DaprRunFile, daprRunNote, doc)
}

// withProfileEnv adds to env what m's app gets from the profile: the gateway's idempotency
// TTL.
func (g *gen) withProfileEnv(m *manifest.Module, env map[string]string) map[string]string {
	if m.Spec.App.ID == g.set.Platform.Spec.Gateway && g.prof.IdempotencyTTL != "" {
		if env == nil {
			env = map[string]string{}
		}
		env[envvar.GatewayIdempotentTTL] = g.prof.IdempotencyTTL
		g.fromPlatform("env "+envvar.GatewayIdempotentTTL, "/idempotencyTTL")
	}
	return env
}

// AppEnv is the environment m's app gets from the manifests (nil if none).
func AppEnv(m *manifest.Module) map[string]string {
	env := map[string]string{}
	if db := m.Spec.Database; db != nil && db.Schema != m.Metadata.Name {
		env[envvar.DBSchema] = db.Schema
	}
	if hasEvents(m) {
		env[envvar.PubSub] = PubSubName(m.Spec.App.ID)
	}
	if len(m.Spec.State) > 0 {
		env[envvar.StateStore] = m.Spec.State[0]
	}
	if len(env) == 0 {
		return nil
	}
	return env
}
