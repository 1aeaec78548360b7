package kubetest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	injectorConsts "github.com/dapr/dapr/pkg/injector/consts"
	"github.com/dapr/dapr/pkg/injector/patcher"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// Dapr's sidecar injection, for real: the pinned Dapr's own injection code (pkg/injector/
// patcher, what its injector service runs for each pod) behind a mutating webhook of ours. Dapr's
// injector service itself cannot run outside a cluster: it takes its serving certificate from
// Sentry under a cluster DNS name and patches its webhook's CA bundle at start. The settings
// below are those the Dapr Helm chart gives it, with dapr_sidecar_injector.sidecarDropALLCapabilities
// (docs/kubernetes.md), and the control plane in dapr-system.
const (
	daprNamespace  = "dapr-system"
	injectorPath   = "/mutate"
	injectorConfig = "goplt-kubetest-dapr-injector"
)

// StartInjector serves the injection webhook on loopback and registers it for pods in the
// namespaces labelled dapr-injection=enabled... in every namespace but kube-system and
// dapr-system, like Dapr's. It runs until ctx ends.
func (c *ControlPlane) StartInjector(ctx context.Context) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.Dir, "apiserver.crt"), filepath.Join(c.Dir, "apiserver.key"))
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+injectorPath, c.inject)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	ca, err := os.ReadFile(filepath.Join(c.Dir, "ca.crt"))
	if err != nil {
		return err
	}
	webhook := fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: %s}
webhooks:
  - name: sidecar-injector.dapr.io
    clientConfig:
      url: https://%s%s
      caBundle: %s
    rules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods], scope: Namespaced}
    namespaceSelector:
      matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, %s]}
    sideEffects: None
    admissionReviewVersions: [v1]
    failurePolicy: Fail
    reinvocationPolicy: IfNeeded
    timeoutSeconds: 10
`, injectorConfig, ln.Addr().String(), injectorPath, base64.StdEncoding.EncodeToString(ca), daprNamespace)
	_, err = c.Kubectl(ctx, []byte(webhook), "apply", "-f", "-")
	return err
}

// inject answers an AdmissionReview with the patch Dapr's injector would make.
func (c *ControlPlane) inject(w http.ResponseWriter, r *http.Request) {
	var ar admissionv1.AdmissionReview
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err == nil {
		err = json.Unmarshal(body, &ar)
	}
	if err != nil || ar.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true}
	anchors := []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n") // no Sentry: a placeholder
	if a := c.trustAnchors.Load(); a != nil {
		anchors = []byte(*a)
	}
	patch, err := sidecarPatch(ar.Request, anchors)
	switch {
	case err != nil:
		resp.Allowed = false
		resp.Result = nil
		resp.Warnings = []string{"dapr injection: " + err.Error()}
	case len(patch) > 0:
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	ar.Response, ar.Request = resp, nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ar)
}

// sidecarPatch is Dapr's injector's getPodPatchOperations with the cluster lookups replaced
// by the chart's defaults (with actors disabled), and Sentry's trust anchors.
func sidecarPatch(req *admissionv1.AdmissionRequest, anchors []byte) ([]byte, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return nil, err
	}
	domain := "cluster.local"
	s := patcher.NewSidecarConfig(&pod)
	s.Mode = injectorConsts.ModeKubernetes
	s.Namespace = req.Namespace
	s.MTLSEnabled = true
	s.Identity = req.Namespace + ":" + pod.Spec.ServiceAccountName
	s.OperatorAddress = patcher.ServiceAPI.Address(daprNamespace, domain)
	s.SentryAddress = patcher.ServiceSentry.Address(daprNamespace, domain)
	s.RunAsNonRoot = true
	s.ReadOnlyRootFilesystem = true
	s.SidecarDropALLCapabilities = true
	s.ControlPlaneNamespace = daprNamespace
	s.ControlPlaneTrustDomain = "cluster.local"
	s.SentrySPIFFEID = "spiffe://cluster.local/ns/" + daprNamespace + "/dapr-sentry"
	s.CurrentTrustAnchors = anchors
	// The chart with global.actors.enabled=false (docs/kubernetes.md): goplt uses no actors,
	// and a sidecar given a placement address is not ready until it reaches placement.
	s.PlacementAddress, s.ActorsService = "", ""
	s.SidecarImage = "ghcr.io/dapr/daprd:1.16.5" // the chart's default, which dapr.io/sidecar-image overrides
	s.SetFromPodAnnotations()
	patch, err := s.GetPatch()
	if err != nil {
		return nil, err
	}
	if len(patch) == 0 {
		return nil, nil
	}
	return json.Marshal(patch)
}

// ErrNotInjected says a pod lacks the daprd container.
var ErrNotInjected = errors.New("no daprd container")

// DaprdContainer returns the injected sidecar of a pod, as kubectl get -o json shows it.
func DaprdContainer(pod corev1.Pod) (corev1.Container, error) {
	for _, c := range pod.Spec.Containers {
		if c.Name == "daprd" {
			return c, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == "daprd" {
			return c, nil
		}
	}
	names := []string{}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	return corev1.Container{}, fmt.Errorf("%w in pod %s (containers %s)", ErrNotInjected, pod.Name, strings.Join(names, ", "))
}
