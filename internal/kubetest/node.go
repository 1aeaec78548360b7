package kubetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/goplt/goplt/internal/images"
)

// A real node: the pinned kubelet on Debian's containerd and runc, pods on a CNI bridge
// (Debian's containernetworking-plugins), kube-proxy and CoreDNS. It needs root: runc makes
// namespaces and cgroups, the bridge plugin makes links, kube-proxy writes iptables rules.
// Everything lives in the control plane's folder but the bridge and kube-proxy's rules, which
// Stop removes, and the kubelet's cgroups, which a later run reuses. One real node runs on a
// machine at a time (the bridge and its address are fixed).
const (
	// NodeName is the real node's name.
	NodeName = "goplt-node"
	// NodeIP is the node's address: the gateway of its pod bridge, so pods reach what the
	// tests serve there and the API server reaches the kubelet.
	NodeIP = "10.217.0.1"
	// PodCIDR is the pods' subnet on the bridge.
	PodCIDR = "10.217.0.0/24"

	bridgeName = "goplt-kt0"
	// kubernetesServiceIP is the kubernetes Service's address, the first of the Service range.
	kubernetesServiceIP = "10.0.0.1"
	// pauseImage is the sandbox image: built here (nothing can be pulled from a public
	// registry) and imported into containerd, so it is never pulled.
	pauseImage  = "goplt.local/kubetest/pause:1"
	nodeToken   = "goplt-kubetest-node"
	criNS       = "k8s.io"
	cniConfName = "10-goplt-kubetest.conflist"
)

// NodeTools are the host programs a real node needs besides the kubelet, with the Debian
// package that has each.
var NodeTools = map[string]string{"containerd": "containerd", "ctr": "containerd", "runc": "runc",
	"/usr/lib/cni/bridge": "containernetworking-plugins", "/usr/lib/cni/host-local": "containernetworking-plugins",
	"/usr/lib/cni/loopback": "containernetworking-plugins", "iptables": "iptables"}

// checkNodeHost says what is missing for a real node, all at once.
func checkNodeHost() error {
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (runc, cgroups, network links)")
	}
	var missing []string
	for tool, pkg := range NodeTools {
		if _, err := exec.LookPath(tool); err != nil && !slices.Contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("a real node needs %s: `make system-deps` installs them (apt-get install %s)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return nil
}

// node is the real node's processes and paths.
type node struct {
	dir    string
	socket string // containerd's
	proxy  string // kube-proxy, which removes its rules on Stop
}

// startNode starts containerd, imports the pause image and starts the kubelet, which
// registers NodeName; it does not wait for the node to be Ready.
func (c *ControlPlane) startNode(ctx context.Context, o Options, repoRoot string, bins map[string]string, ps []int) error {
	kubeletPort, healthPort := ps[0], ps[1]
	if err := checkNodeHost(); err != nil {
		return err
	}
	n := &node{dir: filepath.Join(c.Dir, "node")}
	n.socket = filepath.Join(n.dir, "containerd.sock")
	c.node = n
	f := func(parts ...string) string { return filepath.Join(append([]string{n.dir}, parts...)...) }
	for _, d := range []string{f("cni"), f("cni-state"), f("certs.d"), f("kubelet"), f("volumes")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := ensureBridge(); err != nil {
		return err
	}
	// restrict_oom_score_adj: this machine's root may not lower an OOM score (the kubelet's own
	// attempt is refused too), and runc fails a container whose spec asks for it.
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`, f("root"), f("state"), n.socket, pauseImage, f("cni"), f("certs.d"))
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "goplt-kubetest", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
`, bridgeName, f("cni-state"), PodCIDR, NodeIP)
	files := map[string]string{f("containerd.toml"): conf, f("cni", cniConfName): cni}
	// Registries the tests serve over plain HTTP on loopback, which containerd pulls from.
	for _, r := range o.Registries {
		files[f("certs.d", r, "hosts.toml")] = fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", r, r)
	}
	for path, body := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return err
		}
	}
	if err := c.start(o, "containerd", "containerd", "--config", f("containerd.toml")); err != nil {
		return err
	}
	if err := waitSocket(ctx, n.socket, time.Minute); err != nil {
		return err
	}
	if err := n.importPause(ctx, repoRoot); err != nil {
		return err
	}
	kubeconfig := f("kubelet.kubeconfig")
	if err := writeKubeconfigToken(kubeconfig, c.Server, filepath.Join(c.Dir, "ca.crt"), nodeToken); err != nil {
		return err
	}
	// failCgroupV1: this machine kind mounts cgroup v1 hierarchies; 1.35 refuses them unless told.
	// Eviction thresholds are low: a test cluster must not evict because a shared disk is full.
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDomain: cluster.local
clusterDNS: [%s]
resolvConf: /etc/resolv.conf
serializeImagePulls: false
maxPods: 30
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.available: "1%%"}
`, NodeIP, kubeletPort, healthPort, filepath.Join(c.Dir, "ca.crt"), n.socket, NodeIP)
	if err := os.WriteFile(f("kubelet.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := c.startNetwork(ctx, o, bins, ps[2], ps[3]); err != nil {
		return err
	}
	return c.start(o, "kubelet", bins["kubelet"], "--config="+f("kubelet.yaml"), "--kubeconfig="+kubeconfig,
		"--hostname-override="+NodeName, "--node-ip="+NodeIP, "--root-dir="+f("kubelet"),
		"--cert-dir="+f("kubelet-pki"), "--node-labels=goplt.dev/node=real", "--v=1")
}

// ensureBridge makes the pod bridge with the node's address before any pod does, so the
// kubelet (and anything the tests serve for pods) can listen on NodeIP from the start.
func ensureBridge() error {
	if _, err := net.InterfaceByName(bridgeName); err != nil {
		if out, err := exec.Command("ip", "link", "add", bridgeName, "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("make bridge %s: %w: %s", bridgeName, err, out)
		}
	}
	if out, err := exec.Command("ip", "addr", "replace", NodeIP+"/24", "dev", bridgeName).CombinedOutput(); err != nil {
		return fmt.Errorf("address bridge %s: %w: %s", bridgeName, err, out)
	}
	if out, err := exec.Command("ip", "link", "set", bridgeName, "up").CombinedOutput(); err != nil {
		return fmt.Errorf("bring up bridge %s: %w: %s", bridgeName, err, out)
	}
	return nil
}

// importPause builds the sandbox image (internal/kubetest/pause) and imports it into
// containerd's CRI namespace, the way `kind load` side-loads images.
func (n *node) importPause(ctx context.Context, repoRoot string) error {
	bin := filepath.Join(n.dir, "pause")
	if err := images.GoBuild(ctx, repoRoot, "./internal/kubetest/pause", bin); err != nil {
		return err
	}
	img, err := images.Build(images.Spec{Ref: pauseImage, Binary: bin, Entrypoint: "pause"})
	if err != nil {
		return err
	}
	tag, err := name.NewTag(pauseImage)
	if err != nil {
		return err
	}
	archive := filepath.Join(n.dir, "pause.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		return err
	}
	_, err = n.ctr(ctx, "images", "import", archive)
	return err
}

// ctr runs containerd's client against the node's containerd, in the CRI namespace.
func (n *node) ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.socket, "--namespace", criNS}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// waitNodeReady waits until the kubelet has registered the node and reports it Ready.
func (c *ControlPlane) waitNodeReady(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		out, err := c.Kubectl(ctx, nil, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && strings.TrimSpace(string(out)) == "True" {
			return nil
		}
		for _, p := range c.procs {
			if p.Exited() {
				return fmt.Errorf("%s exited: %v\n%s", p.Name(), p.Err(), strings.Join(p.Tail(), "\n"))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready within %v (%s %v)", NodeName, bound, out, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stopPods removes every pod through the kubelet, so each sandbox's network is torn down by
// CNI, and waits until containerd has no container left.
func (c *ControlPlane) stopPods(ctx context.Context) {
	if c.node == nil {
		return
	}
	_, _ = c.Kubectl(ctx, nil, "delete", "pods", "--all", "--all-namespaces", "--grace-period=2", "--timeout=60s")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := c.node.ctr(ctx, "containers", "list", "-q")
		if err != nil || strings.TrimSpace(out) == "" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// clean undoes what outlives the node's processes: container shims, mounts under the node's
// folder, kube-proxy's rules, the bridge. It runs after they have stopped.
func (n *node) clean() {
	killShims(n.socket)
	unmountUnder(n.dir)
	if n.proxy != "" {
		_ = exec.Command(n.proxy, "--cleanup").Run()
	}
	_ = exec.Command("ip", "link", "del", bridgeName).Run()
}

// killShims kills the containerd shims serving the node's containerd: they run in their own
// sessions and would keep their containers.
func killShims(socket string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "containerd-shim") || !strings.Contains(string(b), socket) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
}

// unmountUnder unmounts everything mounted under dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

func waitSocket(ctx context.Context, path string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s within %v", path, bound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startNetwork starts what gives pods a cluster network beyond their bridge: kube-proxy, for
// Service addresses (iptables rules on the host), and CoreDNS on the node's address, for
// *.svc.cluster.local names (the kubelet's clusterDNS).
func (c *ControlPlane) startNetwork(ctx context.Context, o Options, bins map[string]string, healthPort, metricsPort int) error {
	corefile := filepath.Join(c.node.dir, "Corefile")
	body := fmt.Sprintf(".:53 {\n  bind %s\n  errors\n  kubernetes cluster.local {\n    kubeconfig %s kubetest\n  }\n}\n", NodeIP, c.Kubeconfig)
	if err := os.WriteFile(corefile, []byte(body), 0o644); err != nil {
		return err
	}
	if err := c.start(o, "coredns", bins["coredns"], "-conf", corefile); err != nil {
		return err
	}
	c.node.proxy = bins["kube-proxy"]
	return c.start(o, "kube-proxy", bins["kube-proxy"], "--kubeconfig="+c.Kubeconfig, "--hostname-override="+NodeName,
		"--cluster-cidr="+PodCIDR, "--proxy-mode=iptables", "--conntrack-max-per-core=0",
		"--healthz-bind-address=127.0.0.1:"+strconv.Itoa(healthPort), "--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort))
}
