# The dashboard's JSON: the static dashboards/ess.json (the base, valid JSON on its own) with, per
# site of the sites file (var.sites_config_path, the one storage.tf uploads), a completeness tile
# and a lost-frames tile appended in one row below the base tiles. Values come from the export's
# data status lines (ess_day_* metrics, label site), so they change once a day.

locals {
  dashboard_base  = jsondecode(file("${path.module}/dashboards/ess.json"))
  dashboard_tiles = local.dashboard_base.mosaicLayout.tiles
  dashboard_sites = [for s in yamldecode(file(var.sites_config_path)).sites : s.site_id]
  # First free row of the grid, and the size of a per-site tile (two per row of 48 columns).
  dashboard_top    = max([for t in local.dashboard_tiles : t.yPos + t.height]...)
  dashboard_width  = 24
  dashboard_height = 16

  dashboard_site_tiles = flatten([for i, site in local.dashboard_sites : [
    {
      xPos   = 0
      yPos   = local.dashboard_top + i * local.dashboard_height
      width  = local.dashboard_width
      height = local.dashboard_height
      widget = {
        title = "${site}: completeness (%, mean of the banks' day)"
        xyChart = {
          dataSets = [{
            timeSeriesQuery = {
              prometheusQuery = "sum(increase(logging_googleapis_com:user_ess_day_completeness_sum{site=\"${site}\"}[1d])) / sum(increase(logging_googleapis_com:user_ess_day_completeness_count{site=\"${site}\"}[1d]))"
              unitOverride    = "%"
            }
            legendTemplate = "completeness ${site}"
            plotType       = "LINE"
          }]
          thresholds        = [{ value = var.completeness_threshold_percent, label = "alert threshold" }]
          timeshiftDuration = "0s"
          yAxis             = { label = "% of expected ticks", scale = "LINEAR" }
        }
      }
    },
    {
      xPos   = local.dashboard_width
      yPos   = local.dashboard_top + i * local.dashboard_height
      width  = local.dashboard_width
      height = local.dashboard_height
      widget = {
        title = "${site}: lost frames and frozen banks (per day)"
        xyChart = {
          dataSets = [
            {
              timeSeriesQuery = {
                prometheusQuery = "sum(increase(logging_googleapis_com:user_ess_day_lost_frames_sum{site=\"${site}\"}[1d]))"
                unitOverride    = "1"
              }
              legendTemplate = "lost ${site}"
              plotType       = "STACKED_BAR"
            },
            {
              timeSeriesQuery = {
                prometheusQuery = "sum(increase(logging_googleapis_com:user_ess_frozen_banks{site=\"${site}\"}[1d]))"
                unitOverride    = "1"
              }
              legendTemplate = "frozen ${site}"
              plotType       = "STACKED_BAR"
            },
          ]
          timeshiftDuration = "0s"
          yAxis             = { label = "per day", scale = "LINEAR" }
        }
      }
    },
  ]])

  dashboard_json = jsonencode(merge(local.dashboard_base, {
    mosaicLayout = merge(local.dashboard_base.mosaicLayout, {
      tiles = concat(local.dashboard_tiles, local.dashboard_site_tiles)
    })
  }))
}
