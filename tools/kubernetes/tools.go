//go:build tools

// Package tools pins the Kubernetes control plane goplt's tests run: kube-apiserver,
// kube-controller-manager, kube-scheduler, kubectl, and the kubelet and kube-proxy of their
// real node.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
