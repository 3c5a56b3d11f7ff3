// Package render loads Helm charts and renders them into Kubernetes objects
// with Helm's own library (helm.sh/helm/v4), the way `helm template` does.
//
// Load and LoadArchive read a chart directory or .tgz into memory, refusing
// unsafe archive entries (links, devices, absolute or ".." paths, oversized
// files) and never writing to disk. ParseValues, ReadValuesFile, MergeValues
// and ApplySet build user values with Helm's -f and --set semantics.
//
// Render is pure: chart and values in, objects out. It talks to no cluster
// (the template function lookup returns nothing), does no DNS or network
// access (values.schema.json $refs to files or URLs are refused) and reads
// no clock or files of its own. Its output is post-processed by a chain of
// kyaml kio.Filters:
//
//  1. Namespace defaulting. An object without metadata.namespace gets the
//     release namespace unless its kind is cluster-scoped. Cluster-scoped
//     kinds are: the built-in Kubernetes ones (Namespace, ClusterRole,
//     CustomResourceDefinition, StorageClass, webhooks, ... see
//     builtinClusterScoped), kinds passed in Options.ClusterScoped, and
//     kinds that a CustomResourceDefinition in the same render declares
//     with spec.scope: Cluster. Any other kind is assumed namespaced.
//     Objects that name a namespace keep it.
//  2. Ownership metadata. Every object and hook gets the labels
//     LabelRelease (release name) and LabelNamespace (release namespace)
//     and the annotation AnnotationRelease ("NAMESPACE/NAME").
//
// Hooks (helm.sh/hook) are returned apart from Objects; test hooks are
// dropped. Objects come in Helm's install order: the chart's crds/ files
// first, then templates sorted by kind.
//
// Params and ParamsFile describe a chart's values for `list-params` and
// gen-params files; Lint checks a chart directory; Create writes Helm's
// starter chart.
package render
