package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/repo"
)

// daprCLIEnv names the Dapr CLI binary when it is not `dapr` on PATH (CI builds it with
// ../shared/tools/dapr-cli/build.sh). Set, it must exist: the test then fails rather than skips.
const daprCLIEnv = "GOPLT_DAPR_CLI"

// gatewayURL is where the run file puts the gateway (its appPort).
const gatewayURL = "http://127.0.0.1:8080"

// TestDaprCLIRunsThePlatform walks docs/local-stack.md's "With the Dapr CLI" as a user would,
// with the real Dapr CLI: goplt infra up, eval "$(goplt env)", dapr run -f
// deploy/local/dapr.yaml; then a user registers, logs in and creates a post through the
// gateway, dapr list shows the apps, dapr invoke reaches billing through the console's sidecar,
// and dapr stop -f stops them.
func TestDaprCLIRunsThePlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform under the Dapr CLI")
	}
	dapr := findDaprCLI(t)
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	// The run file's fixed ports (Sentry's is the CLI's own default) must be free.
	for _, port := range []int{50001, 8080, 8100, 8101, 8102, 8103, 8104, 8105, 8106} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("port %d, which deploy/local/dapr.yaml or the Dapr CLI uses, is taken: %v", port, err)
		}
		l.Close()
	}
	tmp := t.TempDir()
	goplt := filepath.Join(tmp, "goplt")
	build := exec.Command("go", "build", "-o", goplt, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build goplt: %v\n%s", err, out)
	}
	// PostgreSQL runs as another user when tests run as root: its folder must be reachable,
	// which t.TempDir's 0700 parent is not.
	home, err := os.MkdirTemp("", "goplt-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	// The stack's data under a private home; the CLI writes its logs into the repository's
	// git-ignored .dapr/logs (appDirPath).
	env := append(os.Environ(), "GOPLT_HOME="+home, "DAPR_CLI="+dapr,
		"GOPLT_BIN="+goplt, "PATH="+filepath.Dir(dapr)+string(os.PathListSeparator)+os.Getenv("PATH"))
	shell := func(ctx context.Context, script string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Dir = root
		cmd.Env = env
		return cmd
	}

	up := shell(context.Background(), `"$GOPLT_BIN" infra up --sentry-port 50001`)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("goplt infra up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := shell(context.Background(), `"$GOPLT_BIN" infra down`).CombinedOutput(); err != nil {
			t.Errorf("goplt infra down: %v\n%s", err, out)
		}
	})

	// The user's two commands, in one shell so the exports reach the CLI and its sidecars.
	var runOut bytes.Buffer
	run := shell(context.Background(), `set -e; eval "$("$GOPLT_BIN" env)"; exec "$DAPR_CLI" run -f deploy/local/dapr.yaml`)
	run.Stdout, run.Stderr = &runOut, &runOut
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("dapr run -f output (tail):\n%s", tail(runOut.String(), 60))
			logs, _ := filepath.Glob(filepath.Join(root, ".dapr", "logs", "*"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s (tail):\n%s", f, tail(string(b), 15))
			}
		}
	})

	// Apps are built by `go run` on first start: allow for compiling nine of them.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if resp, err := http.Get(gatewayURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("dapr run -f exited before the gateway was ready: %v", err)
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway was not ready 5 minutes after dapr run -f")
		}
	}

	// Through the gateway, as docs/local-stack.md's walkthrough does. A sidecar may still be
	// registering in Consul while the gateway answers: retry only unavailability.
	secrets, err := localsecrets.Read(infra.SecretsFile(home))
	if err != nil {
		t.Fatal(err)
	}
	adm := secrets[platformsecrets.BootstrapAdmin]
	email := fmt.Sprintf("cli%d@example.com", time.Now().UnixNano())
	var created struct{ ID string }
	call(t, "POST", "/users", "", map[string]string{"email": email, "password": "correct horse battery staple", "displayName": "CLI"}, http.StatusCreated, &created)
	var admTok, userTok struct{ AccessToken, RefreshToken string }
	call(t, "POST", "/login", "", map[string]string{"email": adm["email"], "password": adm["password"]}, http.StatusOK, &admTok)
	call(t, "PUT", "/users/"+created.ID+"/roles", admTok.AccessToken, map[string][]string{"roles": {"blog.editor", "blog.reader"}}, http.StatusOK, nil)
	call(t, "POST", "/login", "", map[string]string{"email": email, "password": "correct horse battery staple"}, http.StatusOK, &userTok)
	var post struct{ ID string }
	call(t, "POST", "/blog/posts", userTok.AccessToken, map[string]string{"title": "Under the Dapr CLI", "body": "hello"}, http.StatusCreated, &post)
	if post.ID == "" {
		t.Fatal("the created post has no id")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := shell(ctx, `"$DAPR_CLI" list`).CombinedOutput()
	if err != nil {
		t.Fatalf("dapr list: %v\n%s", err, out)
	}
	for _, app := range []string{"gateway", "identity", "auth", "authz", "audit", "blog", "billing", "notes", "console"} {
		if !strings.Contains(string(out), app) {
			t.Errorf("dapr list does not show %s:\n%s", app, out)
		}
	}
	// Even a call to billing through its own sidecar resolves billing in Consul first, and
	// under the CLI a sidecar's first health check may pass only 15 s after it registered.
	for {
		out, err = shell(ctx, `"$DAPR_CLI" invoke --app-id billing --method billing/plans --verb GET`).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "500") || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil || !strings.Contains(string(out), "free") {
		t.Errorf("dapr invoke billing/plans: %v\n%s", err, out)
	}

	if out, err := shell(ctx, `"$DAPR_CLI" stop -f deploy/local/dapr.yaml`).CombinedOutput(); err != nil {
		t.Fatalf("dapr stop -f: %v\n%s", err, out)
	}
	select {
	case <-exited:
		stopped = true
	case <-time.After(time.Minute):
		t.Fatal("dapr run -f still runs a minute after dapr stop -f")
	}
	if resp, err := http.Get(gatewayURL + "/readyz"); err == nil {
		resp.Body.Close()
		t.Errorf("the gateway still answers after dapr stop -f (%d)", resp.StatusCode)
	}
}

// findDaprCLI returns the Dapr CLI as a user has it: GOPLT_DAPR_CLI, else `dapr` on PATH.
func findDaprCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(daprCLIEnv); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s=%s: %v", daprCLIEnv, p, err)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	p, err := exec.LookPath("dapr")
	if err != nil {
		t.Skipf("no Dapr CLI: put dapr (1.16) on PATH or name it in %s (../shared/tools/dapr-cli/build.sh builds it)", daprCLIEnv)
	}
	return p
}

// call sends a JSON request to the gateway and decodes the answer into out, retrying while the
// gateway answers 503 (a module's sidecar not yet resolvable).
func call(t *testing.T, method, path, bearer string, body any, want int, out any) {
	t.Helper()
	j, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequest(method, gatewayURL+path, bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			continue
		}
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
			}
		}
		return
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
