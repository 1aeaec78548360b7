package runner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/stacktest"
)

var stack *stacktest.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(_ context.Context, s *stacktest.Stack) (func(), error) {
		stack = s
		return nil, nil
	})
}

func start(t *testing.T, timeout time.Duration, apps ...runplan.App) (*runner.Group, error) {
	t.Helper()
	if stack == nil {
		t.Skip("integration test: needs the real stack")
	}
	plan := &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind, Apps: apps}
	if err := plan.Validate(); err != nil {
		t.Fatal(err)
	}
	return runner.Start(context.Background(), runner.Options{
		Root: stack.Root, Plan: plan, Infra: stack.Endpoints(), Daprd: stack.Daprd,
		WorkDir: t.TempDir(), Output: stack.Output, ReadyTimeout: timeout,
	})
}

// An app that dies while starting is named, with its exit status and last output.
func TestStartFailureSaysWhichAndWhy(t *testing.T) {
	_, err := start(t, 30*time.Second, runplan.App{
		ID: "crasher", Command: []string{"/bin/sh", "-c", "echo 'opening database'; echo 'fatal: schema locked' >&2; exit 7"},
		Config: "deploy/local/config/console.yaml",
	})
	if err == nil {
		t.Fatal("start succeeded")
	}
	for _, want := range []string{"app crasher did not become ready", "exit status 7", "fatal: schema locked"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A dependent is not started until what it depends on is ready; when that never happens the
// run fails naming the probe, and the dependent's processes never exist.
func TestDependentsWaitForReadiness(t *testing.T) {
	g, err := start(t, 3*time.Second,
		runplan.App{ID: "slow", Command: []string{"/bin/sh", "-c", "exec sleep 60"}, Config: "deploy/local/config/console.yaml"},
		runplan.App{ID: "dependent", Config: "deploy/local/config/console.yaml", DependsOn: []string{"slow"}},
	)
	if err == nil {
		g.Stop()
		t.Fatal("start succeeded although slow never became ready")
	}
	if !strings.Contains(err.Error(), "app slow: app /readyz not ready after 3s") {
		t.Errorf("error = %v", err)
	}
	if strings.Contains(err.Error(), "dependent") {
		t.Errorf("the dependent was started: %v", err)
	}
}
