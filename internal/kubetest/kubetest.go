// Package kubetest runs a real Kubernetes control plane on loopback for tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and either kwok (a fake node that
// runs pods without containers) or a real node (the kubelet on containerd and runc, pods on a
// CNI bridge; node.go), at the versions internal/binaries pins, with kubectl as the client.
// Certificates, keys, the kubeconfig and the node's state are made in a temporary folder;
// outside it, only the real node's bridge (deleted on Stop) and its cgroups are touched.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/ports"
	"github.com/goplt/goplt/internal/proc"
)

// adminToken authenticates the tests as a member of system:masters.
const adminToken = "goplt-kubetest-admin"

// Options choose what runs besides etcd and the API server.
type Options struct {
	// Nodes starts kube-controller-manager, kube-scheduler and kwok with one fake node, so
	// Deployments get Pods that are scheduled and report Running.
	Nodes bool
	// Kubelet runs a real node instead of kwok's fake one (with Nodes): the pinned kubelet on
	// containerd and runc, pods on a CNI bridge with NodeIP as its gateway. Needs root.
	Kubelet bool
	// Registries are host:port registries served over plain HTTP that the real node pulls from.
	Registries []string
	// Output receives the processes' logs (nil discards).
	Output io.Writer
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	Dir        string // certificates, kubeconfig, etcd data
	Kubeconfig string
	Server     string // https://127.0.0.1:<port>

	kubectl string
	node    *node // the real node, when Options.Kubelet
	// trustAnchors are Sentry's root certificates, which the injector hands to sidecars, once
	// InstallDapr has run.
	trustAnchors atomic.Pointer[string]
	ports        *ports.Allocator
	procs        []*proc.Process // in start order
}

// Start builds or finds the pinned binaries (the cache `goplt deps --kubernetes` fills) and
// starts the control plane. Stop it with Stop.
func Start(ctx context.Context, repoRoot string, o Options) (_ *ControlPlane, err error) {
	r := binaries.Resolver{RepoRoot: repoRoot, Progress: os.Stderr}
	bins := map[string]string{}
	for _, t := range binaries.Kubernetes() {
		p, err := r.Ensure(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		bins[t.Name] = p
	}
	dir, err := os.MkdirTemp("", "goplt-kube-")
	if err != nil {
		return nil, err
	}
	c := &ControlPlane{Dir: dir, kubectl: bins["kubectl"]}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.ports, err = ports.Default(); err != nil {
		return nil, err
	}
	ps, err := c.ports.Take(10)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort := ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]
	if err := writeCredentials(dir); err != nil {
		return nil, err
	}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfigToken(c.Kubeconfig, c.Server, filepath.Join(dir, "ca.crt"), adminToken); err != nil {
		return nil, err
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	if err := c.start(o, "etcd", bins["etcd"], "--name", "kubetest", "--data-dir", f("etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c.procs[0], &http.Client{Timeout: time.Second}, etcdURL+"/health", "", time.Minute); err != nil {
		return nil, err
	}
	// With a real node the API server is also the kubernetes Service's endpoint for pods:
	// it listens on the node's address too, and advertises it.
	bind, advertise, reconciler := "127.0.0.1", "127.0.0.1", "none"
	if o.Kubelet {
		if err := ensureBridge(); err != nil {
			return nil, err
		}
		bind, advertise, reconciler = "0.0.0.0", NodeIP, "lease"
	}
	api := []string{"--etcd-servers=" + etcdURL, "--bind-address=" + bind, "--secure-port=" + strconv.Itoa(apiPort),
		"--advertise-address=" + advertise, "--tls-cert-file=" + f("apiserver.crt"), "--tls-private-key-file=" + f("apiserver.key"),
		"--client-ca-file=" + f("ca.crt"), "--token-auth-file=" + f("tokens.csv"), "--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local", "--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"), "--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=" + reconciler, "--cert-dir=" + f("apiserver-certs"), "--profiling=false",
		"--kubelet-client-certificate=" + f("kubelet-client.crt"), "--kubelet-client-key=" + f("kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP"}
	if err := c.start(o, "kube-apiserver", bins["kube-apiserver"], api...); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c.procs[1], c.httpClient(), c.Server+"/readyz", adminToken, 2*time.Minute); err != nil {
		return nil, err
	}
	if !o.Nodes {
		return c, nil
	}
	if err := c.start(o, "kube-controller-manager", bins["kube-controller-manager"], "--kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort), "--leader-elect=false",
		"--service-account-private-key-file="+f("sa.key"), "--root-ca-file="+f("ca.crt"),
		"--use-service-account-credentials=false", "--controllers=*", "--cert-dir="+f("kcm-certs")); err != nil {
		return nil, err
	}
	if err := c.start(o, "kube-scheduler", bins["kube-scheduler"], "--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort)); err != nil {
		return nil, err
	}
	if o.Kubelet {
		if err := c.startNode(ctx, o, repoRoot, bins, ps[6:10]); err != nil {
			return nil, err
		}
		if err := c.waitNodeReady(ctx, 2*time.Minute); err != nil {
			return nil, err
		}
		return c, nil
	}
	stages := f("kwok-stages.yaml")
	if err := writeKwokStages(ctx, repoRoot, stages); err != nil {
		return nil, err
	}
	if err := c.start(o, "kwok", bins["kwok"], "--kubeconfig="+c.Kubeconfig, "--manage-all-nodes=true",
		"--node-ip=127.0.0.2", "--server-address=127.0.0.1:"+strconv.Itoa(kwokPort), "--cidr=10.0.1.0/24",
		"--config="+stages); err != nil {
		return nil, err
	}
	if _, err := c.Kubectl(ctx, []byte(fakeNode), "apply", "-f", "-"); err != nil {
		return nil, err
	}
	return c, nil
}

// fakeNode is the node kwok keeps Ready and runs pods on (without containers).
const fakeNode = `apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/arch: amd64, kubernetes.io/os: linux, kubernetes.io/hostname: kwok-node-0, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
`

// writeKwokStages writes kwok's "fast" node and pod stages and the node heartbeat, from the
// pinned kwok module (tools/kwok), as one configuration file.
func writeKwokStages(ctx context.Context, repoRoot, path string) error {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok")
	cmd.Dir = filepath.Join(repoRoot, "tools", "kwok")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("find the kwok module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "kustomize", "stage")
	var b bytes.Buffer
	for _, f := range []string{"node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml",
		"pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(data)
		b.WriteString("\n")
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

func (c *ControlPlane) start(o Options, name, path string, args ...string) error {
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	p, err := proc.Start(proc.Spec{Name: name, Path: path, Args: args, Output: prefixed(out, name)})
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, p)
	return nil
}

// Stop stops every process, the API server before etcd, and removes the folder. A real
// node's pods are deleted through its kubelet first, so their networks are torn down.
func (c *ControlPlane) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.stopPods(ctx)
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Stop(5 * time.Second)
	}
	if c.node != nil {
		c.node.clean()
	}
	if c.ports != nil {
		c.ports.Close()
	}
	_ = os.RemoveAll(c.Dir)
}

// Kubectl runs kubectl against the control plane as a cluster administrator, with stdin as
// its input, and returns its standard output; an error carries the standard error.
func (c *ControlPlane) Kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	out, _, err := c.KubectlWarn(ctx, stdin, args...)
	return out, err
}

// KubectlWarn is Kubectl that also returns the warnings the API server sent (kubectl prints
// them on standard error as "Warning: ...").
func (c *ControlPlane) KubectlWarn(ctx context.Context, stdin []byte, args ...string) ([]byte, []string, error) {
	cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var warnings []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "Warning:") {
			warnings = append(warnings, line)
		}
	}
	if err != nil {
		return stdout.Bytes(), warnings, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), warnings, nil
}

// Env is the environment for a kubectl (or goplt) run by hand against the control plane.
func (c *ControlPlane) Env() []string { return append(os.Environ(), "KUBECONFIG="+c.Kubeconfig) }

// KubectlPath is the kubectl binary the control plane's tests use.
func (c *ControlPlane) KubectlPath() string { return c.kubectl }

func (c *ControlPlane) httpClient() *http.Client {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(filepath.Join(c.Dir, "ca.crt")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// waitHTTP polls url until it answers 200, p exits, or the bound passes.
func waitHTTP(ctx context.Context, p *proc.Process, hc *http.Client, url, token string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name(), p.Err(), strings.Join(p.Tail(), "\n"))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s within %v (last: %v)\n%s", p.Name(), url, bound, last, strings.Join(p.Tail(), "\n"))
}

// writeCredentials makes a CA, the API server's serving certificate (127.0.0.1), the service
// account signing key and the token file.
func writeCredentials(dir string) error {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "goplt-kubetest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(NodeIP), net.ParseIP(kubernetesServiceIP)},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	// The API server's client certificate for kubelets (logs, exec, port-forward).
	clientKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	clientTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, ca, &clientKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":             pemBlock("CERTIFICATE", caDER),
		"apiserver.crt":      pemBlock("CERTIFICATE", srvDER),
		"apiserver.key":      pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(srvKey)),
		"kubelet-client.crt": pemBlock("CERTIFICATE", clientDER),
		"kubelet-client.key": pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(clientKey)),
		"sa.key":             pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		"sa.pub":             pemBlock("PUBLIC KEY", saPub),
		"tokens.csv": []byte(adminToken + `,admin,admin-uid,"system:masters"` + "\n" +
			nodeToken + ",system:node:" + NodeName + `,node-uid,"system:nodes"` + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeKubeconfigToken(path, server, caFile, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: kubetest
    cluster: {server: %q, certificate-authority-data: %s}
users:
  - name: admin
    user: {token: %s}
contexts:
  - name: kubetest
    context: {cluster: kubetest, user: admin}
current-context: kubetest
`, server, base64.StdEncoding.EncodeToString(ca), token)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// prefixed writes each line to w prefixed with the process name.
func prefixed(w io.Writer, name string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		for _, line := range strings.SplitAfter(string(p), "\n") {
			if line != "" {
				if _, err := io.WriteString(w, name+": "+line); err != nil {
					return 0, err
				}
			}
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
