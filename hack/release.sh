#!/usr/bin/env bash
# `make release VERSION=x.y.z REGISTRY=host/path`: everything a user installs
# natsforge from, in ${DIST} (dist/):
#
#   images.json             the pushed images: ${REGISTRY}/natsforge/{operator,broker,pause}
#                           tagged ${VERSION}, each an OCI index of linux/amd64 and
#                           linux/arm64, with their digests
#   natsforge-${VERSION}.tgz  the Helm chart, its values pinned to those images
#                           (repository, tag and digest)
#   install.yaml            the same chart rendered for `kubectl apply -f`: the
#                           natsforge-system Namespace, CRDs, RBAC, admission
#                           policies, the operator Deployment
#   sbom/<image>.cdx.json   a CycloneDX SBOM of each image (hack/images, from the
#                           binaries' Go build information)
#   SHA256SUMS              sha256sum of every file above
#
# Reproducible: the binaries are built with -trimpath and no build id, the images
# are created at the HEAD commit's time (SOURCE_DATE_EPOCH), so the same commit
# and VERSION give the same image digests. REGISTRY_INSECURE=true pushes over
# plain http (a local registry).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

: "${VERSION:?VERSION=x.y.z is required}"
: "${REGISTRY:?REGISTRY=host/path is required: the registry your cluster pulls from}"
: "${HELM:?HELM (the pinned helm) is required: run through make release}"
DIST="${DIST:-dist}"
IMAGE_ARCHS="${IMAGE_ARCHS:-amd64 arm64}"
REGISTRY_INSECURE="${REGISTRY_INSECURE:-false}"
NAMESPACE="natsforge-system"

if ! [[ "${VERSION}" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "release: VERSION=${VERSION} is not a semantic version x.y.z[-pre] (Helm needs one; it is also the image tag)" >&2
  exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "release: warning: the work tree has uncommitted changes; the images are labelled with HEAD ($(git rev-parse --short HEAD)) all the same" >&2
fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"

start=$(date +%s)
rm -rf "${DIST}"
mkdir -p "${DIST}/sbom"

echo "==> images ${REGISTRY}/natsforge/{operator,broker,pause}:${VERSION} (${IMAGE_ARCHS})"
make --no-print-directory images VERSION="${VERSION}" IMAGE_TAG="${VERSION}" IMAGE_ARCHS="${IMAGE_ARCHS}" \
  IMAGES_OUT= IMAGES_DIGESTS="${DIST}/images.json" IMAGES_SBOM="${DIST}/sbom" \
  REGISTRY="${REGISTRY}" REGISTRY_INSECURE="${REGISTRY_INSECURE}"
images_done=$(date +%s)

echo "==> chart natsforge-${VERSION}.tgz, pinned to the pushed images"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
cp -R charts/natsforge "${work}/natsforge"
go run ./hack/images pin-chart --digests "${DIST}/images.json" --values "${work}/natsforge/values.yaml"
"${HELM}" lint --strict "${work}/natsforge" >/dev/null
"${HELM}" package "${work}/natsforge" --version "${VERSION}" --app-version "${VERSION}" --destination "${DIST}" >/dev/null
# helm stamps the archive with the time of packaging: the commit's time instead.
go run ./hack/images normalize-chart "${DIST}/natsforge-${VERSION}.tgz"

echo "==> install.yaml (helm template of the packaged chart, namespace ${NAMESPACE})"
{
  echo "# natsforge ${VERSION}: kubectl apply -f install.yaml"
  echo "# Rendered from natsforge-${VERSION}.tgz (helm template natsforge --namespace ${NAMESPACE})."
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Namespace"
  echo "metadata:"
  echo "  name: ${NAMESPACE}"
  "${HELM}" template natsforge "${DIST}/natsforge-${VERSION}.tgz" --namespace "${NAMESPACE}"
} > "${DIST}/install.yaml"

(cd "${DIST}" && sha256sum "natsforge-${VERSION}.tgz" install.yaml images.json sbom/*.cdx.json > SHA256SUMS)

echo "==> ${DIST}/ ($(( $(date +%s) - start ))s, images $(( images_done - start ))s)"
sed 's/^/    /' "${DIST}/SHA256SUMS"
echo "    digests:"
go run ./hack/images digests "${DIST}/images.json" | sed 's/^/      /'
