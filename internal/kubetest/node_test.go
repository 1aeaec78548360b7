package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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

// The dev overlay on a real node, as a user deploys it: the kubelet on containerd and runc
// with kube-proxy and CoreDNS, images built by `goplt images` and pulled by digest from a real
// registry, Dapr's Sentry and operator as pods, Dapr's injection, a broker where Strimzi's
// would be, PostgreSQL over the pod network. Every app container must pass its startup probe
// (the kernel migrated its schema), run the pushed image as Pod Security "restricted" asks,
// every Deployment must become Available (sidecars connected), and requests must pass through
// the gateway's Service: a public read, a user registering, being granted roles and creating a
// post, and the gateway's audit event crossing the broker to audit.
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

	installCRDs(ctx, t, cp, root, true)
	if err := cp.StartInjector(ctx); err != nil {
		t.Fatal(err)
	}
	dapr := time.Now()
	if err := cp.InstallDapr(ctx, root, registry); err != nil {
		t.Fatal(err)
	}
	t.Logf("Dapr's Sentry and operator Available on the node in %v", time.Since(dapr).Round(time.Millisecond))

	// docs/kubernetes.md's order: the namespace, the broker (Strimzi's), the Secrets, the apps.
	if _, err := cp.Kubectl(ctx, nil, "apply", "--server-side", "-f", filepath.Join(root, "deploy/kubernetes/namespace.yaml")); err != nil {
		t.Fatal(err)
	}
	standInForStrimzi(ctx, t, cp, root)
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, []string{"secrets", "kubernetes", "--kubectl", cp.KubectlPath(), "--kubeconfig", cp.Kubeconfig}, &stdout, &stderr); code != 0 {
		t.Fatalf("goplt secrets kubernetes: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if _, err := cp.Kubectl(ctx, nil, "apply", "--server-side", "--field-manager=goplt", "--validate=strict", "-k", pushed.dir); err != nil {
		t.Fatalf("the dev overlay with the pushed images was refused:\n%v", err)
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
		// The sidecar runs goplt's daprd.
		if logs := daprdLogs(ctx, cp, pod.Name); !strings.Contains(logs, "Starting Dapr Runtime (goplt components) -- version 1.16.5") {
			t.Errorf("%s: the daprd container did not run goplt's daprd:\n%s", pod.Name, logs)
		}
	}

	// With their sidecars connected (identity from Sentry, components from the operator, the
	// broker over TLS), every Deployment becomes Available.
	if _, err := cp.Kubectl(ctx, nil, "wait", "-n", "goplt", "--for=condition=Available", "deployment", "--all", "--timeout=300s"); err != nil {
		var logs strings.Builder
		for _, pod := range pods {
			var kept []string
			for _, l := range strings.Split(daprdLogs(ctx, cp, pod.Name), "\n") {
				if !strings.Contains(l, "placement") && !strings.Contains(l, "level=info") {
					kept = append(kept, l)
				}
			}
			fmt.Fprintf(&logs, "--- %s daprd (no info, no placement):\n%s\n", pod.Name, tail(strings.Join(kept, "\n"), 15))
		}
		t.Fatalf("Deployments not Available on the real node: %v\n%s", err, logs.String())
	}
	t.Logf("every Deployment Available %v after the apply", time.Since(applied).Round(time.Millisecond))

	// A request through the gateway's Service: gateway -> its sidecar -> billing's sidecar
	// (Kubernetes name resolution, mTLS) -> billing -> PostgreSQL.
	ip, err := cp.Kubectl(ctx, nil, "get", "service", "-n", "goplt", "gateway", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + string(ip) + "/billing/plans")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "plans") {
		t.Fatalf("GET /billing/plans through the gateway's Service: %s %s", resp.Status, body)
	}
	t.Logf("GET /billing/plans through the gateway's Service %s: %s", ip, resp.Status)

	// docs/local-stack.md's walkthrough, in the cluster: a user registers, the bootstrap
	// administrator grants roles, the user creates a post; the gateway's audit event crosses
	// the broker (TLS, SCRAM, ACLs) to audit, which the administrator finds in the log.
	base := "http://" + string(ip)
	admin := secretData(ctx, t, cp)["identity-bootstrap-admin"]
	email := fmt.Sprintf("node%d@example.com", time.Now().UnixNano())
	var created struct{ ID string }
	call(t, base, "POST", "/users", "", map[string]string{"email": email, "password": "correct horse battery staple", "displayName": "Node"}, http.StatusCreated, &created)
	var admTok, userTok struct{ AccessToken string }
	call(t, base, "POST", "/login", "", map[string]string{"email": admin["email"], "password": admin["password"]}, http.StatusOK, &admTok)
	call(t, base, "PUT", "/users/"+created.ID+"/roles", admTok.AccessToken, map[string][]string{"roles": {"blog.editor", "blog.reader"}}, http.StatusOK, nil)
	call(t, base, "POST", "/login", "", map[string]string{"email": email, "password": "correct horse battery staple"}, http.StatusOK, &userTok)
	var post struct{ ID string }
	reqID := call(t, base, "POST", "/blog/posts", userTok.AccessToken, map[string]string{"title": "On a real node", "body": "hello"}, http.StatusCreated, &post).Get("X-Request-ID")
	for deadline := time.Now().Add(30 * time.Second); ; {
		var entries json.RawMessage
		call(t, base, "GET", "/audit/entries?action=blog.post.create&actor=user:"+created.ID, admTok.AccessToken, nil, http.StatusOK, &entries)
		if reqID != "" && strings.Contains(string(entries), reqID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the post's creation (request %q) is not in the audit log within 30 s: %s", reqID, entries)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("registered, granted, logged in, created post %s and found it in the audit log, through the gateway", post.ID)

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

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// call makes one JSON request to the gateway at base and decodes the answer into out.
func call(t *testing.T, base, method, path, token string, body any, want int, out any) http.Header {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.Header
}
