package config

import (
	"fmt"
	"slices"
	"strings"
)

// ProtocolKServeV2GRPC is the KServe v2 gRPC inference API
// (inference.GRPCInferenceService, with the ModelStreamInfer bidi stream).
// Such a backend is always reached over HTTP/2; clients reach it through the
// gateway's listener with gRPC, naming the model in request metadata.
const ProtocolKServeV2GRPC Protocol = "kserve-v2-grpc"

// IsGRPC reports whether backends of protocol p speak gRPC.
func (p Protocol) IsGRPC() bool { return p == ProtocolKServeV2GRPC }

// applyGRPCDefaults makes gRPC backends speak HTTP/2.
func (b *Backend) applyGRPCDefaults() {
	if b.Protocol.IsGRPC() {
		b.HTTP2 = true
	}
}

// validateGRPCModel checks that a model's versions and fallbacks are all gRPC
// backends or all HTTP ones (a request cannot change protocol on the way),
// and that a gRPC model keeps its name upstream: the gateway routes gRPC
// streams by metadata and never rewrites the model_name inside messages.
func (v *validator) validateGRPCModel(p string, m Model) {
	var backends []string
	for _, ver := range m.Versions {
		backends = append(backends, ver.Backend)
	}
	backends = append(backends, m.Fallbacks...)
	grpc, http := "", ""
	for _, name := range backends {
		b := v.cfg.Backend(name)
		switch {
		case b == nil:
		case b.Protocol.IsGRPC() && grpc == "":
			grpc = name
		case !b.Protocol.IsGRPC() && http == "":
			http = name
		}
	}
	if grpc != "" && http != "" {
		v.at(p, "model %q mixes the gRPC backend %q with the HTTP backend %q; a model's versions and fallbacks must share one protocol", m.Name, grpc, http)
		return
	}
	if grpc == "" {
		return
	}
	for j, ver := range m.Versions {
		if ver.UpstreamModel != m.Name {
			vp := fmt.Sprintf("%s.versions[%d].upstream_model", p, j)
			if m.shortForm {
				vp = p + ".upstream_model"
			}
			v.at(vp, "model %q is served over gRPC, where the gateway cannot rename it (upstream_model %q); give the backend's model name as the public name", m.Name, ver.UpstreamModel)
		}
	}
}

// GRPCDefaultMethods are the methods of inference.GRPCInferenceService the
// gateway forwards to every gRPC backend: inference and metadata.
var GRPCDefaultMethods = []string{
	"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer", "ModelStreamInfer",
}

// GRPCKnownMethods are every method of inference.GRPCInferenceService as
// KServe v2 and Triton define it: the defaults, then Triton's model
// configuration, statistics, repository, shared-memory, trace and log
// methods, which a backend's grpc_methods may enable. Any other method is
// refused, and never named in a metric label.
var GRPCKnownMethods = append(slices.Clip(GRPCDefaultMethods),
	"ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	"SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
	"CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister",
	"TraceSetting", "LogSettings",
)

// validateGRPCMethods checks backend b's grpc_methods at path p: only on
// gRPC backends, and only names of GRPCKnownMethods.
func (v *validator) validateGRPCMethods(p string, b *Backend) {
	if len(b.GRPCMethods) > 0 && !b.Protocol.IsGRPC() {
		v.at(p+".grpc_methods", "backend %q: grpc_methods applies only to %s backends", b.Name, ProtocolKServeV2GRPC)
		return
	}
	for k, m := range b.GRPCMethods {
		if !slices.Contains(GRPCKnownMethods, m) {
			v.at(fmt.Sprintf("%s.grpc_methods[%d]", p, k), "backend %q: %q is not a method of inference.GRPCInferenceService; known: %s",
				b.Name, m, strings.Join(GRPCKnownMethods, ", "))
		}
	}
}
