package contract

// Names of service requests (backends of protocol http mounted on a path
// prefix, docs/services.md).
const (
	// MetaService and MetaOperation are the keys under MetadataNamespace
	// naming a service request's service and operation; the access log
	// writes them, and the service log is filtered on MetaService.
	MetaService   = "service"
	MetaOperation = "operation"
	// ServiceLog is the log name of the gRPC access log entries Envoy
	// sends Streamgate when a service request ends (metrics per service,
	// operation and tenant).
	ServiceLog = "streamgate_service"
	// ServiceRoutePrefix starts the name of each service's route.
	ServiceRoutePrefix = "service_"
)
