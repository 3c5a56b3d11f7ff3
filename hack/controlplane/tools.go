//go:build tools

// Package controlplane pins the Kubernetes control-plane binaries that
// charter's tests and demo run against. Nothing here is imported by charter;
// `make controlplane` builds these main packages into a cache folder.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
