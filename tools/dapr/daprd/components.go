package main

import (
	"github.com/dapr/components-contrib/nameresolution/hashicorp/consul"
	nrkubernetes "github.com/dapr/components-contrib/nameresolution/kubernetes"
	"github.com/dapr/components-contrib/nameresolution/mdns"
	kafka "github.com/dapr/components-contrib/pubsub/kafka"
	sskubernetes "github.com/dapr/components-contrib/secretstores/kubernetes"
	"github.com/dapr/components-contrib/secretstores/local/file"
	nrLoader "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsubLoader "github.com/dapr/dapr/pkg/components/pubsub"
	secretstoresLoader "github.com/dapr/dapr/pkg/components/secretstores"
)

// registerComponents adds the component types goplt's compiled manifests reference, and
// nothing else. No module declares state today, so no state store is registered (the
// PostgreSQL one would add 160 packages, half of them AWS's); goplt validate says what to do
// when a module starts to.
//
// Keep it in step with internal/sidecar.Components in the goplt module (a test there parses
// this file): a type added here must be added there, and the reverse.
//
// Each line registers the same constructor under the same names as Dapr's own
// cmd/daprd/components, so component files written for the stock daprd load unchanged.
func registerComponents() {
	// pubsub.kafka/v1: the event bus (local kfake broker, real Kafka in production).
	pubsubLoader.DefaultRegistry.RegisterComponent(kafka.NewKafka, "kafka")

	// Name resolution: consul for goplt's profiles; mdns is Dapr's self-hosted default and
	// kubernetes its default in a cluster, both used when a Configuration names none.
	nrLoader.DefaultRegistry.RegisterComponent(consul.NewResolver, "hashicorp.consul", "consul")
	nrLoader.DefaultRegistry.RegisterComponent(mdns.NewResolver, "mdns")
	nrLoader.DefaultRegistry.RegisterComponent(nrkubernetes.NewResolver, "kubernetes")

	// Secret stores: the local file (goplt run) and Kubernetes secrets (the kubernetes profile,
	// and Dapr's built-in store in a cluster).
	secretstoresLoader.DefaultRegistry.RegisterComponent(file.NewLocalSecretStore, "local.file")
	secretstoresLoader.DefaultRegistry.RegisterComponent(sskubernetes.NewKubernetesSecretStore, "kubernetes")
}
