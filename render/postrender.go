package render

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// Ownership metadata Render adds to every object and hook.
const (
	LabelRelease      = "charter.sh/release"           // label: release name
	LabelNamespace    = "charter.sh/release-namespace" // label: release namespace
	AnnotationRelease = "charter.sh/release"           // annotation: "NAMESPACE/NAME"
)

// filters is the post-render chain, applied in order.
func filters(opts Options) []kio.Filter {
	return []kio.Filter{
		namespaceFilter{namespace: opts.Namespace, extra: opts.ClusterScoped},
		ownershipFilter{name: opts.ReleaseName, namespace: opts.Namespace},
	}
}

// namespaceFilter sets the release namespace on namespaced objects that
// have none. An object is cluster-scoped, and left alone, when its group and
// kind are in builtinClusterScoped, in the extra list, or declared with
// spec.scope Cluster by a CustomResourceDefinition among the nodes being
// filtered. Every other kind is taken to be namespaced.
type namespaceFilter struct {
	namespace string
	extra     []schema.GroupKind
}

var _ kio.Filter = namespaceFilter{}

func (f namespaceFilter) Filter(nodes []*kyaml.RNode) ([]*kyaml.RNode, error) {
	cluster := map[schema.GroupKind]bool{}
	for gk := range builtinClusterScoped {
		cluster[gk] = true
	}
	for _, gk := range f.extra {
		cluster[gk] = true
	}
	for _, n := range nodes {
		gk, scope, err := crdScope(n)
		if err != nil {
			return nil, err
		}
		if scope == "Cluster" {
			cluster[gk] = true
		}
	}
	for _, n := range nodes {
		if n.GetNamespace() != "" || cluster[groupKind(n)] {
			continue
		}
		if err := n.SetNamespace(f.namespace); err != nil {
			return nil, fmt.Errorf("set namespace of %s %s: %w", n.GetKind(), n.GetName(), err)
		}
	}
	return nodes, nil
}

// crdScope returns the kind a CustomResourceDefinition declares and its scope.
func crdScope(n *kyaml.RNode) (schema.GroupKind, string, error) {
	if n.GetKind() != "CustomResourceDefinition" || !strings.HasPrefix(n.GetApiVersion(), "apiextensions.k8s.io/") {
		return schema.GroupKind{}, "", nil
	}
	var out [3]string
	for i, p := range [][]string{{"spec", "group"}, {"spec", "names", "kind"}, {"spec", "scope"}} {
		v, err := n.Pipe(kyaml.Lookup(p...))
		if err != nil {
			return schema.GroupKind{}, "", fmt.Errorf("CustomResourceDefinition %s: %w", n.GetName(), err)
		}
		if v != nil {
			out[i] = kyaml.GetValue(v)
		}
	}
	return schema.GroupKind{Group: out[0], Kind: out[1]}, out[2], nil
}

func groupKind(n *kyaml.RNode) schema.GroupKind {
	group, _, found := strings.Cut(n.GetApiVersion(), "/")
	if !found {
		group = "" // core: apiVersion "v1"
	}
	return schema.GroupKind{Group: group, Kind: n.GetKind()}
}

// builtinClusterScoped are the cluster-scoped kinds of Kubernetes itself,
// plus a few add-on kinds that charts commonly create without shipping
// their CRD (Gateway API, volume snapshots, cert-manager).
var builtinClusterScoped = func() map[schema.GroupKind]bool {
	m := map[schema.GroupKind]bool{}
	for group, kinds := range map[string][]string{
		"":                             {"Namespace", "Node", "PersistentVolume", "ComponentStatus"},
		"rbac.authorization.k8s.io":    {"ClusterRole", "ClusterRoleBinding"},
		"apiextensions.k8s.io":         {"CustomResourceDefinition"},
		"apiregistration.k8s.io":       {"APIService"},
		"admissionregistration.k8s.io": {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"},
		"storage.k8s.io":               {"StorageClass", "CSIDriver", "CSINode", "VolumeAttachment", "VolumeAttributesClass"},
		"scheduling.k8s.io":            {"PriorityClass"},
		"node.k8s.io":                  {"RuntimeClass"},
		"networking.k8s.io":            {"IngressClass", "IPAddress", "ServiceCIDR"},
		"policy":                       {"PodSecurityPolicy"},
		"certificates.k8s.io":          {"CertificateSigningRequest", "ClusterTrustBundle"},
		"flowcontrol.apiserver.k8s.io": {"FlowSchema", "PriorityLevelConfiguration"},
		"authentication.k8s.io":        {"TokenReview", "SelfSubjectReview"},
		"authorization.k8s.io":         {"SubjectAccessReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview"},
		"resource.k8s.io":              {"DeviceClass", "ResourceSlice", "DeviceTaintRule"},
		"internal.apiserver.k8s.io":    {"StorageVersion"},
		"storagemigration.k8s.io":      {"StorageVersionMigration"},
		"gateway.networking.k8s.io":    {"GatewayClass"},
		"snapshot.storage.k8s.io":      {"VolumeSnapshotClass", "VolumeSnapshotContent"},
		"cert-manager.io":              {"ClusterIssuer"},
	} {
		for _, k := range kinds {
			m[schema.GroupKind{Group: group, Kind: k}] = true
		}
	}
	return m
}()

// ownershipFilter labels and annotates every object with its release.
type ownershipFilter struct {
	name, namespace string
}

var _ kio.Filter = ownershipFilter{}

func (f ownershipFilter) Filter(nodes []*kyaml.RNode) ([]*kyaml.RNode, error) {
	for _, n := range nodes {
		for _, kv := range [][3]string{
			{kyaml.LabelsField, LabelRelease, f.name},
			{kyaml.LabelsField, LabelNamespace, f.namespace},
			{kyaml.AnnotationsField, AnnotationRelease, f.namespace + "/" + f.name},
		} {
			if err := setMetadata(n, kv[0], kv[1], kv[2]); err != nil {
				return nil, fmt.Errorf("label %s %s: %w", n.GetKind(), n.GetName(), err)
			}
		}
	}
	return nodes, nil
}

// setMetadata sets metadata.<field>.<key> to a string value, replacing a
// null labels/annotations map (which kyaml's setters silently skip).
func setMetadata(n *kyaml.RNode, field, key, value string) error {
	m, err := n.Pipe(kyaml.LookupCreate(kyaml.MappingNode, kyaml.MetadataField))
	if err != nil {
		return err
	}
	f := m.Field(field)
	if f == nil || f.Value.YNode().Kind != kyaml.MappingNode {
		if err := m.PipeE(kyaml.SetField(field, kyaml.NewMapRNode(nil))); err != nil {
			return err
		}
	}
	return n.PipeE(
		kyaml.Lookup(kyaml.MetadataField, field),
		kyaml.SetField(key, kyaml.NewStringRNode(value)))
}
