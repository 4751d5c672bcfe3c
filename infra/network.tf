resource "google_compute_network" "vpc" {
  project                 = var.project_id
  name                    = "${var.prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "main" {
  project                  = var.project_id
  name                     = "${var.prefix}-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Dedicated /28 for the Serverless VPC Access connector (functions -> Cloud SQL private IP).
resource "google_compute_subnetwork" "connector" {
  project                  = var.project_id
  name                     = "${var.prefix}-connector-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.connector_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "functions" {
  project       = var.project_id
  name          = "${var.prefix}-fn-conn"
  region        = var.region
  machine_type  = var.connector_machine_type
  min_instances = 2
  max_instances = var.connector_max_instances

  subnet {
    name = google_compute_subnetwork.connector.name
  }
}

# Cloud NAT: the collector VM (no external IP) reaches PyPI and the sites; functions use it with
# function_vpc_egress = ALL_TRAFFIC.
resource "google_compute_router" "nat" {
  project = var.project_id
  name    = "${var.prefix}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "nat" {
  project                            = var.project_id
  name                               = "${var.prefix}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.main.self_link
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  subnetwork {
    name                    = google_compute_subnetwork.connector.self_link
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Private services access: Cloud SQL instances get private IPs from this range only.
resource "google_compute_global_address" "private_services" {
  count = local.any_sql ? 1 : 0

  project       = var.project_id
  name          = "${var.prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  network       = google_compute_network.vpc.id
  address       = split("/", var.private_services_cidr)[0]
  prefix_length = tonumber(split("/", var.private_services_cidr)[1])
}

resource "google_service_networking_connection" "private_services" {
  count = local.any_sql ? 1 : 0

  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services[0].name]

  # Deleting the peering fails while Cloud SQL still holds producer resources for a while after
  # the instances are gone; abandon it (the VPC's deletion removes it).
  deletion_policy = "ABANDON"
}

# Only IAP TCP forwarding may reach the collector's SSH (OS Login decides who).
resource "google_compute_firewall" "iap_ssh" {
  count = length(var.iap_ssh_source_ranges) > 0 ? 1 : 0

  project                 = var.project_id
  name                    = "${var.prefix}-allow-iap-ssh"
  network                 = google_compute_network.vpc.id
  direction               = "INGRESS"
  source_ranges           = var.iap_ssh_source_ranges
  target_service_accounts = [google_service_account.component["collector"].email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
