// Package layers holds the test that keeps goplt's import layering, as Go's
// go/build/deps_test.go keeps the standard library's. The layers, bottom up:
//
//   - contracts between files and processes: naming, manifest, runplan, brokeracl, sidecar,
//     routetable, platformsecrets (the secrets services read, in every profile), localsecrets
//     (the local profile's secrets file), policydoc (the compiled policy file), eventsig, token,
//     contracts, envvar, telemetry (OpenTelemetry tracer provider and trace context);
//   - the app SDK, linked into every app: kernel, invoke, outbox, httpx, password, emailaddr,
//     failpoint, and the above;
//   - the compiler: compile (manifests to files; no processes, no network);
//   - the developer's and operator's tools: binaries, proc, ports, infra, kafkabroker,
//     runner, stacktest, kubetest, images, clustersecrets, dashboard, repo, scaffold, bustool,
//     watch, testkit, cli.
//
// Apps (apps/<name>) build on the SDK and the contracts, and reach another app only through
// its client (and, for audit's hash chain, its chain) package; nothing in internal/ imports an
// app except the tools that verify audit's chain.
package layers
