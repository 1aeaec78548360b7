package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/kafkabroker"
	"github.com/goplt/goplt/internal/localsecrets"
)

// prepareBus gives every app of the plan its event-signing keys and its broker user.
func (g *Group) prepareBus(ctx context.Context) error {
	var apps []string
	for _, a := range g.opts.Plan.Apps {
		apps = append(apps, a.ID)
	}
	return PrepareBus(ctx, g.opts.Root, g.opts.Infra, apps)
}

// PrepareBus gives each app its event-signing keys and, when the manifests give each app its
// own broker user (deploy/local/broker-acls.yaml under root), makes the passwords and applies
// the access list to the broker: topics, users and ACLs, before any sidecar connects. goplt
// run does it before it starts the sidecars; goplt env for sidecars the Dapr CLI starts.
func PrepareBus(ctx context.Context, root string, ep infra.Endpoints, apps []string) error {
	secrets := ep.SecretsFile
	if secrets == "" {
		return errors.New("no secrets file in the infrastructure's endpoints")
	}
	set, err := brokeracl.Load(filepath.Join(root, brokeracl.LocalFile))
	if errors.Is(err, fs.ErrNotExist) {
		set = &brokeracl.Set{} // anonymous broker access (the platform sets no brokerUsers)
	} else if err != nil {
		return err
	}
	if err := localsecrets.EnsureApps(secrets, time.Now(), apps, set.Users); err != nil {
		return fmt.Errorf("app secrets: %w", err)
	}
	if len(set.Users) == 0 {
		return nil
	}
	f, err := localsecrets.Read(secrets)
	if err != nil {
		return err
	}
	passwords := map[string]string{}
	for _, u := range set.Users {
		passwords[u.Name] = f[u.Secret][u.Key]
	}
	admin, err := ep.KafkaAdmin()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafkabroker.Apply(ctx, ep.KafkaBrokers, admin, set, passwords); err != nil {
		return fmt.Errorf("apply %s to the broker: %w", brokeracl.LocalFile, err)
	}
	return nil
}
