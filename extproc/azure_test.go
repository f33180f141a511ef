package extproc

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAzurePath(t *testing.T) {
	r := &Route{UpstreamModel: "gpt 4o/prod", AzureAPIVersion: "2024-10-21"}
	assert.Equal(t, "/openai/deployments/gpt%204o%2Fprod/chat/completions?api-version=2024-10-21", azurePath("/v1/chat/completions?foo=bar", r))
	assert.Equal(t, "/openai/deployments/gpt%204o%2Fprod/embeddings?api-version=2024-10-21", azurePath("/v1/embeddings", r))
}
