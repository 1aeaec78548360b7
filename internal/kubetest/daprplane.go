package kubetest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/images"
)

// Dapr's control plane on the real node: Sentry (identities) and the operator (components,
// configurations and subscriptions for sidecars; the `<app>-dapr` Services name resolution
// uses) as pods in dapr-system, as Dapr's Helm chart installs them, from images built here
// from the pinned Dapr module (nothing can be pulled from a public registry). Sentry's
// Kubernetes validator accepts only pod-bound service account tokens, so they run as pods, not
// beside the cluster. Placement and the scheduler (actors, jobs, workflows) are left out:
// goplt uses none of them. The injector is the test's (StartInjector), given Sentry's trust
// anchors once Sentry has made them.

// InstallDapr builds Sentry's and the operator's images, pushes them to registry (host:port,
// one the node pulls from), applies the control plane and waits until it serves and the
// injector has its trust anchors.
func (c *ControlPlane) InstallDapr(ctx context.Context, repoRoot, registry string) error {
	refs := map[string]string{}
	for _, name := range []string{"sentry", "operator"} {
		bin := filepath.Join(c.Dir, "dapr-"+name)
		if err := images.GoBuild(ctx, filepath.Join(repoRoot, "tools", "dapr"), "github.com/dapr/dapr/cmd/"+name, bin,
			"-X github.com/dapr/dapr/pkg/buildinfo.version="+binaries.DaprVersion); err != nil {
			return err
		}
		img, err := images.Build(images.Spec{Ref: "dapr/" + name, Binary: bin, Entrypoint: name})
		if err != nil {
			return err
		}
		ref, err := images.Push(ctx, registry+"/dapr/"+name+":"+binaries.DaprVersion, img)
		if err != nil {
			return err
		}
		refs[name] = ref
	}
	if _, err := c.Kubectl(ctx, []byte(fmt.Sprintf(daprSentry, refs["sentry"])), "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("apply Sentry: %w", err)
	}
	// Sentry makes the root and issuer at its first start and writes the root to the
	// dapr-trust-bundle ConfigMap, which the operator mounts and the injector hands out.
	var anchors string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := c.Kubectl(ctx, nil, "get", "configmap", "-n", daprNamespace, "dapr-trust-bundle", "-o", `jsonpath={.data.ca\.crt}`)
		if err == nil && strings.Contains(string(out), "BEGIN CERTIFICATE") {
			anchors = string(out)
			break
		}
		if time.Now().After(deadline) {
			desc, _ := c.Kubectl(ctx, nil, "describe", "pods", "-n", daprNamespace)
			logs, _ := c.Kubectl(ctx, nil, "logs", "-n", daprNamespace, "deployment/dapr-sentry", "--tail=30")
			return fmt.Errorf("dapr-system: Sentry wrote no trust anchors within 3m (%v)\n%s\n%s", err, desc, logs)
		}
		time.Sleep(time.Second)
	}
	c.trustAnchors.Store(&anchors)
	if _, err := c.Kubectl(ctx, []byte(fmt.Sprintf(daprOperator, refs["operator"])), "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("apply the operator: %w", err)
	}
	if _, err := c.Kubectl(ctx, nil, "wait", "-n", daprNamespace, "--for=condition=Available", "deployment", "--all", "--timeout=180s"); err != nil {
		desc, _ := c.Kubectl(ctx, nil, "describe", "pods", "-n", daprNamespace)
		logs, _ := c.Kubectl(ctx, nil, "logs", "-n", daprNamespace, "deployment/dapr-operator", "--tail=40")
		return fmt.Errorf("dapr-system: the control plane is not Available: %w\n%s\n%s", err, desc, logs)
	}
	return nil
}

// daprSentry is the chart's Sentry (its trust bundle, Configuration, Deployment and Service),
// with one difference: the control plane's accounts are bound to cluster-admin here, where
// the chart grants each a narrower role.
const daprSentry = `apiVersion: v1
kind: Namespace
metadata: {name: dapr-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: dapr-sentry, namespace: dapr-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: dapr-operator, namespace: dapr-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: goplt-kubetest-dapr-control-plane}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
  - {kind: ServiceAccount, name: dapr-sentry, namespace: dapr-system}
  - {kind: ServiceAccount, name: dapr-operator, namespace: dapr-system}
---
apiVersion: v1
kind: Secret
metadata: {name: dapr-trust-bundle, namespace: dapr-system, labels: {app: dapr-sentry}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: dapr-trust-bundle, namespace: dapr-system, labels: {app: dapr-sentry}}
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: daprsystem, namespace: dapr-system}
spec:
  metric: {enabled: false}
  mtls: {enabled: true, workloadCertTTL: 24h, allowedClockSkew: 15m, controlPlaneTrustDomain: cluster.local,
    sentryAddress: "dapr-sentry.dapr-system.svc.cluster.local:443"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dapr-sentry, namespace: dapr-system, labels: {app: dapr-sentry}}
spec:
  replicas: 1
  selector: {matchLabels: {app: dapr-sentry}}
  template:
    metadata:
      labels: {app: dapr-sentry}
      annotations: {dapr.io/control-plane: sentry}
    spec:
      serviceAccountName: dapr-sentry
      containers:
        - name: dapr-sentry
          image: %s
          args: [--mode, kubernetes, --log-level, info, --enable-metrics=false, --trust-domain, cluster.local]
          env:
            - name: NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
          ports: [{containerPort: 50001}, {containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts:
            - {name: credentials, mountPath: /var/run/secrets/dapr.io/credentials, readOnly: true}
      volumes:
        - name: credentials
          secret: {secretName: dapr-trust-bundle}
---
apiVersion: v1
kind: Service
metadata: {name: dapr-sentry, namespace: dapr-system}
spec:
  selector: {app: dapr-sentry}
  ports: [{name: grpc, port: 443, targetPort: 50001, protocol: TCP}]
`

// daprOperator is the chart's operator: its Deployment and the dapr-api and dapr-webhook
// Services.
const daprOperator = `apiVersion: apps/v1
kind: Deployment
metadata: {name: dapr-operator, namespace: dapr-system, labels: {app: dapr-operator}}
spec:
  replicas: 1
  selector: {matchLabels: {app: dapr-operator}}
  template:
    metadata:
      labels: {app: dapr-operator}
      annotations: {dapr.io/control-plane: operator}
    spec:
      serviceAccountName: dapr-operator
      containers:
        - name: dapr-operator
          image: %s
          args: [--watch-interval, "0", --log-level, info, --enable-metrics=false, --disable-leader-election,
            --trust-anchors-file, /var/run/secrets/dapr.io/tls/ca.crt]
          env:
            - name: NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
          ports: [{containerPort: 6500}, {containerPort: 8080}, {containerPort: 19443}]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: dapr-trust-bundle, mountPath: /var/run/secrets/dapr.io/tls, readOnly: true}
            - {name: dapr-identity-token, mountPath: /var/run/secrets/dapr.io/sentrytoken, readOnly: true}
      volumes:
        - name: tmp
          emptyDir: {medium: Memory, sizeLimit: 64Mi}
        - name: dapr-trust-bundle
          configMap: {name: dapr-trust-bundle}
        - name: dapr-identity-token
          projected:
            sources:
              - serviceAccountToken: {path: token, expirationSeconds: 600, audience: "spiffe://cluster.local/ns/dapr-system/dapr-sentry"}
---
apiVersion: v1
kind: Service
metadata: {name: dapr-api, namespace: dapr-system}
spec:
  selector: {app: dapr-operator}
  ports: [{name: grpc, port: 443, targetPort: 6500, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: dapr-webhook, namespace: dapr-system}
spec:
  selector: {app: dapr-operator}
  ports: [{port: 443, targetPort: 19443, protocol: TCP}]
`
