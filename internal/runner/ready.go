// Readiness: the app, its sidecar and its Consul registration.

package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/goplt/goplt/internal/proc"
)

// waitReady waits for the app's health path, the sidecar's health and, for a sidecar that
// registers itself, a passing Consul health check (until then callers get "no healthy
// services found").
func (g *Group) waitReady(ctx context.Context, a *App, selfRegister bool) error {
	ctx, cancel := context.WithTimeout(ctx, g.opts.ReadyTimeout)
	defer cancel()
	health := a.Spec.HealthPath
	if health == "" {
		health = "/readyz"
	}
	checks := []struct {
		what  string
		probe func(context.Context) error
	}{
		{"sidecar health", func(ctx context.Context) error { return sidecarIsOurs(ctx, a, "/v1.0/healthz") }},
	}
	if a.outside {
		// The app is not there yet, and daprd's full health waits for it: its outbound API is
		// what dependents need, and Consul lists it as healthy once the app answers.
		checks[0].probe = func(ctx context.Context) error { return sidecarIsOurs(ctx, a, "/v1.0/healthz/outbound") }
		selfRegister = false
	}
	if a.Spec.HasApp() && !a.outside {
		checks = append([]struct {
			what  string
			probe func(context.Context) error
		}{{"app " + health, func(ctx context.Context) error {
			return httpOK(ctx, "http://127.0.0.1:"+strconv.Itoa(a.AppPort)+health, nil)
		}}}, checks...)
	}
	if selfRegister {
		cl, err := consul.NewClient(&consul.Config{Address: g.opts.Infra.ConsulHTTP})
		if err != nil {
			return err
		}
		checks = append(checks, struct {
			what  string
			probe func(context.Context) error
		}{"consul health", func(ctx context.Context) error {
			entries, _, err := cl.Health().Service(a.Spec.ID, "", true, (&consul.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.Service.ID == a.ConsulID() {
					return nil
				}
			}
			return fmt.Errorf("%s is not registered in consul as passing yet", a.ConsulID())
		}})
	}
	for _, c := range checks {
		var last error
		for {
			for _, p := range []*proc.Process{a.Process(), a.Sidecar()} {
				if p != nil && p.Exited() {
					return fmt.Errorf("app %s did not become ready: %s", a.Name(), p.Describe())
				}
			}
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			last = c.probe(pctx)
			pcancel()
			if last == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("app %s: %s not ready after %s: %v", a.Name(), c.what, g.opts.ReadyTimeout, last)
			case <-g.stopping:
				return fmt.Errorf("app %s: start abandoned", a.Name())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// sidecarIsOurs checks that the sidecar answering on the app's port is the one started for it:
// another process may have taken the port between choosing it and daprd binding it (then our
// daprd exits, and a health check alone would be answered by the stranger).
func sidecarIsOurs(ctx context.Context, a *App, health string) error {
	if err := httpOK(ctx, a.DaprHTTP()+health, nil); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.DaprHTTP()+"/v1.0/metadata", nil)
	if err != nil {
		return err
	}
	req.Header.Set("dapr-api-token", a.DaprAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var md struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&md) != nil || md.ID != a.Spec.ID {
		return fmt.Errorf("port %d is answered by another sidecar (status %d, app id %q)", a.HTTPPort, resp.StatusCode, md.ID)
	}
	return nil
}

func httpOK(ctx context.Context, url string, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
