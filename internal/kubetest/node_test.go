package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/goplt/goplt/internal/cli"
	"github.com/goplt/goplt/internal/images"
	"github.com/goplt/goplt/internal/repo"
	"github.com/goplt/goplt/internal/stacktest"
)

// The dev overlay on a real node: the kubelet on containerd and runc, images built by `goplt
// images` and pulled by digest from a real registry, Dapr's injection, Pod Security
// "restricted" applied by a real runtime, PostgreSQL reached over the pod network. Every app
// container must pass its startup probe (the kernel has migrated its schema and serves
// /healthz on the pod's address), run the pushed image, and every Pod's sidecar must be goplt's
// daprd from the pushed image, and the runtime must run each app as Pod Security "restricted"
// asks. The sidecars cannot connect: no Dapr control plane runs in this cluster
// (docs/kubernetes.md, "Not done yet").
func TestPodsRunOnARealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real node")
	}
	if err := checkNodeHost(); err != nil {
		t.Fatal(err)
	}
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	registry := StartRegistry(t)
	pushed := pushImages(ctx, t, root, registry)

	stack, err := stacktest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()

	log, err := os.Create(filepath.Join(t.TempDir(), "control-plane.log"))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	cp, err := Start(ctx, root, Options{Nodes: true, Kubelet: true, Registries: []string{registry}, Output: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	t.Logf("control plane and a Ready real node in %v", time.Since(started).Round(time.Millisecond))

	// Pods reach the database through the node's address.
	dbURL, err := url.Parse(stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	dbURL.Host = forward(t, NodeIP+":0", dbURL.Host)
	t.Setenv("GOPLT_DATABASE_URL", dbURL.String())

	installCRDs(ctx, t, cp, root)
	if err := cp.StartInjector(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl(ctx, nil, "apply", "--server-side", "--field-manager=goplt", "--validate=strict", "-k", pushed.dir); err != nil {
		t.Fatalf("the dev overlay with the pushed images was refused:\n%v", err)
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, []string{"secrets", "kubernetes", "--kubectl", cp.KubectlPath(), "--kubeconfig", cp.Kubeconfig}, &stdout, &stderr); code != 0 {
		t.Fatalf("goplt secrets kubernetes: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	bindVolumes(ctx, t, cp)

	// Every app container passes its startup probe on the pod's own address.
	applied := time.Now()
	pods := waitStarted(ctx, t, cp, 6*time.Minute)
	t.Logf("%d app containers started (startup probe passed) %v after the apply", len(pods), time.Since(applied).Round(time.Millisecond))
	for _, pod := range pods {
		app := pod.Labels["app.kubernetes.io/name"]
		if !strings.HasPrefix(pod.Status.PodIP, "10.217.0.") {
			t.Errorf("%s: pod address %q is not on the node's pod network", pod.Name, pod.Status.PodIP)
		}
		for _, cs := range pod.Status.ContainerStatuses {
			want := pushed.digest[app]
			if cs.Name == "daprd" {
				want = pushed.digest["daprd"]
			}
			if want == "" || !strings.HasSuffix(cs.ImageID, "@"+want) {
				t.Errorf("%s/%s runs %s, want the pushed %s", pod.Name, cs.Name, cs.ImageID, want)
			}
		}
		// The runtime enforces "restricted": the app runs as the images' user, with no
		// capabilities and no way to gain privileges.
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == "app" {
				checkRestricted(ctx, t, cp, pod.Name, cs.ContainerID)
			}
		}
		// The sidecar ran goplt's daprd. It stops at its first step, getting an identity from
		// Dapr's Sentry: no Dapr control plane runs in this cluster.
		logs := daprdLogs(ctx, cp, pod.Name)
		if !strings.Contains(logs, "Starting Dapr Runtime (goplt components) -- version 1.16.5") {
			t.Errorf("%s: the daprd container did not run goplt's daprd:\n%s", pod.Name, logs)
		} else if i := strings.Index(logs, "level=fatal"); i >= 0 && app == "gateway" {
			t.Logf("gateway's sidecar: %s", strings.SplitN(logs[i:], "\n", 2)[0])
		}
	}

	// The kernels migrated for real: each module's schema exists in the database.
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, schema := range []string{"audit", "auth", "billing", "blog", "identity"} {
		var tables int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&tables); err != nil || tables == 0 {
			t.Errorf("schema %s: %d tables (%v): the pod did not migrate it", schema, tables, err)
		}
	}
}

// pushedImages is what `goplt images --push` wrote.
type pushedImages struct {
	dir    string            // its kustomization: the dev overlay with every image by digest
	digest map[string]string // image name (app id, "daprd") to digest
}

func pushImages(ctx context.Context, t *testing.T, root, registry string) pushedImages {
	t.Helper()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"images", "--out", out, "--push", registry + "/goplt", "--overlay", filepath.Join(root, "deploy/overlays/dev")}
	if code := cli.Main(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("goplt images: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Images []struct{ Name, NewName, Digest string }
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	p := pushedImages{dir: out, digest: map[string]string{}}
	for _, im := range k.Images {
		p.digest[im.Name[strings.LastIndex(im.Name, "/")+1:]] = im.Digest
	}
	if len(p.digest) < 9 {
		t.Fatalf("pushed %d images, want 8 apps and daprd:\n%s", len(p.digest), b)
	}
	return p
}

// forward accepts on listen and copies each connection to and from target until the test
// ends; it returns the address it listens on.
func forward(t *testing.T, listen, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().String()
}

// waitStarted waits until every Deployment has a Pod whose app container has started (its
// startup probe passed), and returns those Pods.
func waitStarted(ctx context.Context, t *testing.T, cp *ControlPlane, bound time.Duration) []corev1.Pod {
	t.Helper()
	names, err := cp.Kubectl(ctx, nil, "get", "deployments", "-n", "goplt", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(names))
	deadline := time.Now().Add(bound)
	for {
		var all corev1.PodList
		raw, err := cp.Kubectl(ctx, nil, "get", "pods", "-n", "goplt", "-o", "json")
		if err == nil {
			err = json.Unmarshal(raw, &all)
		}
		started := map[string]corev1.Pod{}
		var waiting []string
		for _, pod := range all.Items {
			for _, cs := range pod.Status.ContainerStatuses {
				if cs.Name == "app" && cs.Started != nil && *cs.Started {
					started[pod.Labels["app.kubernetes.io/name"]] = pod
				}
			}
		}
		for _, d := range want {
			if _, ok := started[d]; !ok {
				waiting = append(waiting, d)
			}
		}
		if len(waiting) == 0 && len(want) > 0 {
			pods := make([]corev1.Pod, 0, len(started))
			for _, d := range want {
				pods = append(pods, started[d])
			}
			return pods
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			describe, _ := cp.Kubectl(ctx, nil, "describe", "pods", "-n", "goplt")
			var logs strings.Builder
			for _, pod := range all.Items {
				l, _ := cp.Kubectl(ctx, nil, "logs", "-n", "goplt", pod.Name, "-c", "app", "--tail=20")
				fmt.Fprintf(&logs, "--- %s app:\n%s\n", pod.Name, l)
			}
			t.Fatalf("app containers of %v not started within %v (%v)\n%s\n%s", waiting, bound, err,
				regexp.MustCompile(`(?m)^\s*(Normal|Warning)\s+(Pulled|Created|Started|Scheduled)\s.*\n`).ReplaceAllString(string(describe), ""), logs.String())
		}
		time.Sleep(2 * time.Second)
	}
}

// daprdLogs is the daprd container's log, from its last run when it is restarting.
func daprdLogs(ctx context.Context, cp *ControlPlane, pod string) string {
	logs, err := cp.Kubectl(ctx, nil, "logs", "-n", "goplt", pod, "-c", "daprd", "--tail=-1")
	if err != nil || len(logs) == 0 {
		logs, _ = cp.Kubectl(ctx, nil, "logs", "-n", "goplt", pod, "-c", "daprd", "--previous", "--tail=-1")
	}
	return string(logs)
}

// checkRestricted reads the container's process as the host sees it: user, effective
// capabilities, no_new_privs, and a read-only root.
func checkRestricted(ctx context.Context, t *testing.T, cp *ControlPlane, pod, containerID string) {
	t.Helper()
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := cp.node.ctr(ctx, "tasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	pid := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			pid = f[1]
		}
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if pid == "" || err != nil {
		t.Errorf("%s: no running task for container %s (%v)", pod, id, err)
		return
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	want := fmt.Sprintf("%d %d %d %d", images.User, images.User, images.User, images.User)
	if fields["Uid"] != want || fields["Gid"] != want || fields["CapEff"] != "0000000000000000" || fields["NoNewPrivs"] != "1" {
		t.Errorf("%s: app process Uid %q Gid %q CapEff %q NoNewPrivs %q, want user %d, no capabilities, no_new_privs",
			pod, fields["Uid"], fields["Gid"], fields["CapEff"], fields["NoNewPrivs"], images.User)
	}
	mounts, _ := os.ReadFile("/proc/" + pid + "/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "/" && !strings.HasPrefix(f[3], "ro,") && f[3] != "ro" {
			t.Errorf("%s: the root filesystem is mounted %s, want read-only", pod, f[3])
		}
	}
}
