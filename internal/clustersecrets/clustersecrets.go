// Package clustersecrets creates, in a Kubernetes namespace, every Secret the generated
// Kubernetes output references that goplt can make itself: each app's app and API tokens, its
// event-signing keys and everyone's public event keys, the access-token keys, the audit
// checkpoint key and the bootstrap administrator; and the database URL when it is given.
// It talks to the cluster through kubectl, as the user applying the output does. It never
// prints a secret value, never replaces a Secret that exists (keys stay stable across runs),
// and only updates event-keys, the public keys, when an app's key set was added.
package clustersecrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
)

// Kubectl runs kubectl with stdin and returns its standard output.
type Kubectl func(ctx context.Context, stdin []byte, args ...string) ([]byte, error)

// Plan says what the namespace needs.
type Plan struct {
	Namespace string
	Apps      []string // every app id (tokens)
	EventApps []string // apps that publish or subscribe (event-signing keys)
	// PostgresSecret, when DatabaseURL is set, is created holding it (key "url").
	PostgresSecret, DatabaseURL string
	// Declared are the secrets the manifests declare (spec.secrets): those goplt does not make
	// must exist already.
	Declared []string
}

// Report lists Secret names, never values.
type Report struct {
	Created, Kept, Updated []string
	// Missing are Secrets the pods reference that goplt does not make (the database URL when
	// not given); the caller says how to make them.
	Missing []string
}

// tokenSecrets are the Secrets holding an app's token for the Dapr injector
// (dapr.io/app-token-secret, dapr.io/api-token-secret), key "token".
func tokenSecrets(app string) []string { return []string{app + "-app-token", app + "-api-token"} }

// Ensure creates what p needs that the namespace lacks.
func Ensure(ctx context.Context, kubectl Kubectl, p Plan, now time.Time) (Report, error) {
	var r Report
	existing, err := read(ctx, kubectl, p.Namespace)
	if err != nil {
		return r, err
	}
	// The wanted set, generated where missing by the same code as the local profile's file.
	f := localsecrets.File{}
	maps.Copy(f, existing)
	if _, _, err := f.AddCore(now); err != nil {
		return r, err
	}
	if err := f.AddApps(now, p.EventApps, nil); err != nil {
		return r, err
	}
	delete(f, platformsecrets.BrokerAdmin) // the local broker's; Strimzi has its own
	for _, app := range p.Apps {
		for _, name := range tokenSecrets(app) {
			if f[name]["token"] != "" {
				continue
			}
			tok, err := localsecrets.RandomToken()
			if err != nil {
				return r, err
			}
			f[name] = map[string]string{"token": tok}
		}
	}
	if p.DatabaseURL != "" && f[p.PostgresSecret]["url"] == "" {
		f[p.PostgresSecret] = map[string]string{"url": p.DatabaseURL}
	}
	if f[p.PostgresSecret]["url"] == "" && p.PostgresSecret != "" {
		r.Missing = append(r.Missing, p.PostgresSecret)
	}
	for _, name := range p.Declared {
		if _, ok := f[name]; !ok {
			r.Missing = append(r.Missing, name)
		}
	}

	wanted := []string{platformsecrets.BootstrapAdmin, platformsecrets.SigningKeys, platformsecrets.AuditCheckpointKey, eventsig.PublicKeysSecret}
	for _, app := range p.EventApps {
		wanted = append(wanted, eventsig.SigningSecret(app))
	}
	for _, app := range p.Apps {
		wanted = append(wanted, tokenSecrets(app)...)
	}
	if f[p.PostgresSecret]["url"] != "" {
		wanted = append(wanted, p.PostgresSecret)
	}
	slices.Sort(wanted)
	var create, update []secret
	for _, name := range slices.Compact(wanted) {
		old, ok := existing[name]
		switch {
		case !ok:
			create = append(create, newSecret(p.Namespace, name, f[name]))
			r.Created = append(r.Created, name)
		case name == eventsig.PublicKeysSecret && !maps.Equal(old, f[name]):
			update = append(update, newSecret(p.Namespace, name, f[name]))
			r.Updated = append(r.Updated, name)
		default:
			r.Kept = append(r.Kept, name)
		}
	}
	if len(create) > 0 {
		// create, not apply: a Secret made meanwhile by someone else is kept, and the run fails.
		if _, err := kubectl(ctx, list(create), "create", "-o", "name", "-f", "-"); err != nil {
			return r, fmt.Errorf("create secrets: %w", err)
		}
	}
	if len(update) > 0 {
		if _, err := kubectl(ctx, list(update), "apply", "--server-side", "--field-manager=goplt", "--force-conflicts", "-o", "name", "-f", "-"); err != nil {
			return r, fmt.Errorf("update %s: %w", eventsig.PublicKeysSecret, err)
		}
	}
	return r, nil
}

// read returns the namespace's Secrets, decoded.
func read(ctx context.Context, kubectl Kubectl, ns string) (localsecrets.File, error) {
	out, err := kubectl(ctx, nil, "get", "secrets", "-n", ns, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("read the secrets of namespace %s: %w", ns, err)
	}
	var l struct {
		Items []struct {
			Metadata struct{ Name string }
			Data     map[string]string
		}
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("read the secrets of namespace %s: %w", ns, err)
	}
	f := localsecrets.File{}
	for _, it := range l.Items {
		fields := map[string]string{}
		for k, v := range it.Data {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, fmt.Errorf("secret %s, key %s: %w", it.Metadata.Name, k, err)
			}
			fields[k] = string(b)
		}
		f[it.Metadata.Name] = fields
	}
	return f, nil
}

type secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   secretMeta        `json:"metadata"`
	Type       string            `json:"type"`
	StringData map[string]string `json:"stringData"`
}

type secretMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
}

func newSecret(ns, name string, data map[string]string) secret {
	return secret{APIVersion: "v1", Kind: "Secret", Type: "Opaque", StringData: data,
		Metadata: secretMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/part-of": "goplt", "app.kubernetes.io/managed-by": "goplt"}}}
}

// list is a v1 List of the secrets, for kubectl's standard input (never its arguments, which
// other users of the machine can read).
func list(items []secret) []byte {
	b, _ := json.Marshal(struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Items      []secret `json:"items"`
	}{"v1", "List", items})
	return b
}
