// Package platformsecrets names the secrets the platform's services read through their
// sidecars' secret store, in every profile (a local file, Kubernetes Secrets), with their
// fields and how to decode them. internal/localsecrets creates them locally,
// internal/clustersecrets on a cluster.
package platformsecrets

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
)

// Secret names and fields.
const (
	BootstrapAdmin         = "identity-bootstrap-admin"
	BootstrapAdminEmail    = "email"
	BootstrapAdminPassword = "password"
	SigningKeys            = "auth-signing-keys"
	SigningKeysField       = "keyset"
	AuditCheckpointKey     = "audit-checkpoint-key"
	AuditCheckpointSeed    = "seed" // base64 of a 32-byte Ed25519 seed
	// BrokerAdmin is the local broker's superuser (fields user and password): goplt itself,
	// which creates topics, users and ACLs; apps never see it.
	BrokerAdmin         = "kafka-admin"
	BrokerAdminUser     = "user"
	BrokerAdminPassword = "password"

	// DefaultAdminEmail is the bootstrap administrator's login.
	DefaultAdminEmail = "admin@goplt.local"
)

// CheckpointKey decodes the audit checkpoint key's seed.
func CheckpointKey(seed string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(seed)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: %s must be base64 of %d bytes", AuditCheckpointKey, AuditCheckpointSeed, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}
