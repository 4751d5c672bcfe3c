CREATE TABLE IF NOT EXISTS "bank" (
  "ts" timestamptz NOT NULL,
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "bank_soc" real,
  "bank_soh" real,
  "bank_dc_volt" real,
  "bank_dc_current" real,
  "max_cell_voltage_of_bank" real,
  "min_cell_voltage_of_bank" real,
  "max_cell_temperature_of_bank" real,
  "min_cell_temperature_of_bank" real,
  "bank_power" real,
  "rack_temperature_imbalance_warning" smallint,
  "rack_under_temperature_warning" smallint,
  "rack_over_temperature_warning" smallint,
  "rack_voltage_imbalance_warning" smallint,
  "rack_under_voltage_protection_warning" smallint,
  "rack_over_voltage_protection_warning" smallint,
  "rack_over_current_charge_warning" smallint,
  "rack_over_current_discharge_warning" smallint,
  "rack_temperature_imbalance_fault" smallint,
  "rack_under_temperature_fault" smallint,
  "rack_over_temperature_fault" smallint,
  "rack_voltage_imbalance_fault" smallint,
  "rack_under_voltage_protection_fault" smallint,
  "rack_over_voltage_protection_fault" smallint,
  "rack_over_current_charge_fault" smallint,
  "rack_over_current_discharge_fault" smallint,
  "rack_charge_relay_plus_fault_status" smallint,
  "rack_discharge_relay_minus_fault_status" smallint,
  "rack_fuse_minus_fault_status" smallint,
  "rack_fuse_plus_fault_status" smallint,
  "rack_tray_rack_communication_fault" smallint,
  "rack_n001_master_rack_communication_fault" smallint,
  "rack_n002_master_rack_communication_fault" smallint,
  "rack_n003_master_rack_communication_fault" smallint,
  "rack_n004_master_rack_communication_fault" smallint,
  "rack_n005_master_rack_communication_fault" smallint,
  "rack_n006_master_rack_communication_fault" smallint,
  "rack_n007_master_rack_communication_fault" smallint,
  "rack_n008_master_rack_communication_fault" smallint,
  "battery_status_for_run" smallint,
  "battery_status_for_charge" smallint,
  "battery_status_for_fault" smallint,
  "battery_status_for_warning" smallint,
  "master_rack_communication_fault" smallint,
  "out_of_range" text[],
  PRIMARY KEY ("site_id", "bank_id", "ts")
);

SELECT create_hypertable('"bank"', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS "rack" (
  "ts" timestamptz NOT NULL,
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "rack_id" smallint NOT NULL,
  "rack_soc" real,
  "rack_soh" real,
  "rack_voltage" real,
  "rack_current" real,
  "rack_max_cell_voltage" real,
  "rack_max_cell_voltage_position" smallint,
  "rack_min_cell_voltage" real,
  "rack_min_cell_voltage_position" smallint,
  "rack_cell_voltage_gap" real,
  "rack_cell_voltage_average" real,
  "rack_max_cell_temperature" real,
  "rack_max_cell_temperature_position" smallint,
  "rack_min_cell_temperature" real,
  "rack_min_cell_temperature_position" smallint,
  "rack_cell_temperature_gap" real,
  "rack_cell_temperature_average" real,
  "rack_discharge_relay_minus_status" smallint,
  "rack_charge_relay_plus_status" smallint,
  "rack_cell_balance_status" smallint,
  "rack_current_sensor_discharge" smallint,
  "rack_current_sensor_charge" smallint,
  "rack_status_for_run" smallint,
  "rack_status_for_fault" smallint,
  "rack_status_for_warning" smallint,
  "rack_rack_temperature_imbalance_warning" smallint,
  "rack_rack_under_temperature_warning" smallint,
  "rack_rack_over_temperature_warning" smallint,
  "rack_rack_voltage_imbalance_warning" smallint,
  "rack_rack_under_voltage_protection_warning" smallint,
  "rack_rack_over_voltage_protection_warning" smallint,
  "rack_over_current_charge_warning" smallint,
  "rack_over_current_discharge_warning" smallint,
  "rack_rack_temperature_imbalance_fault" smallint,
  "rack_rack_under_temperature_fault" smallint,
  "rack_rack_over_temperature_fault" smallint,
  "rack_rack_voltage_imbalance_fault" smallint,
  "rack_rack_under_voltage_protection_fault" smallint,
  "rack_rack_over_voltage_protection_fault" smallint,
  "rack_over_current_charge_fault" smallint,
  "rack_over_current_discharge_fault" smallint,
  "rack_charge_relay_plus_fault_status" smallint,
  "rack_discharge_relay_minus_fault_status" smallint,
  "rack_fuse_minus_fault_status" smallint,
  "rack_fuse_plus_fault_status" smallint,
  "rack_tray_rack_communication_fault" smallint,
  "out_of_range" text[],
  PRIMARY KEY ("site_id", "bank_id", "rack_id", "ts")
);

SELECT create_hypertable('"rack"', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS "pcs" (
  "ts" timestamptz NOT NULL,
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "pcs_ac_l1_thd" real,
  "pcs_ac_l2_thd" real,
  "pcs_ac_l3_thd" real,
  "system_temperature_max" real,
  "dc_voltage_1" real,
  "dc_voltage_2" real,
  "dc_current" real,
  "dc_power" real,
  "ac_frequency" real,
  "ac_voltage" real,
  "ac_current_low" integer,
  "ac_current_high" integer,
  "ac_power" real,
  "ac_active_power" real,
  "ac_reactive_power" real,
  "ac_power_factor" real,
  "ac_l1_voltage" real,
  "ac_l1_current" real,
  "ac_l2_voltage" real,
  "ac_l2_current" real,
  "ac_l3_voltage" real,
  "ac_l3_current" real,
  "ac_accumulated_discharge_energy_low" integer,
  "ac_accumulated_discharge_energy_high" integer,
  "ac_accumulated_charge_energy_low" integer,
  "ac_accumulated_charge_energy_high" integer,
  "pcs_status_0" smallint,
  "pcs_status_1" smallint,
  "pcs_status_2" smallint,
  "pcs_status_3" smallint,
  "pcs_status_4" smallint,
  "pcs_status_5" smallint,
  "pcs_status_6" smallint,
  "pcs_status_7" smallint,
  "pcs_status_8" smallint,
  "pcs_status_9" smallint,
  "pcs_status_10" smallint,
  "pcs_status_11" smallint,
  "pcs_status_14" smallint,
  "pcs_status_15" smallint,
  "pcs_protection_1_0" smallint,
  "pcs_protection_1_1" smallint,
  "pcs_protection_1_2" smallint,
  "pcs_protection_1_3" smallint,
  "pcs_protection_1_4" smallint,
  "pcs_protection_1_5" smallint,
  "pcs_protection_1_6" smallint,
  "pcs_protection_1_7" smallint,
  "pcs_protection_1_8" smallint,
  "pcs_protection_1_9" smallint,
  "pcs_protection_1_10" smallint,
  "pcs_protection_1_11" smallint,
  "pcs_protection_1_12" smallint,
  "pcs_protection_1_13" smallint,
  "pcs_protection_1_14" smallint,
  "pcs_protection_1_15" smallint,
  "pcs_protection_2_0" smallint,
  "pcs_protection_2_1" smallint,
  "pcs_protection_2_2" smallint,
  "pcs_protection_2_3" smallint,
  "pcs_protection_2_4" smallint,
  "pcs_protection_2_5" smallint,
  "pcs_protection_2_6" smallint,
  "pcs_protection_2_7" smallint,
  "pcs_protection_2_8" smallint,
  "pcs_protection_2_9" smallint,
  "pcs_protection_2_10" smallint,
  "pcs_protection_2_11" smallint,
  "pcs_protection_2_12" smallint,
  "pcs_protection_2_13" smallint,
  "pcs_protection_2_14" smallint,
  "pcs_protection_2_15" smallint,
  "pcs_protection_3_0" smallint,
  "pcs_protection_3_1" smallint,
  "pcs_protection_3_2" smallint,
  "pcs_protection_3_3" smallint,
  "pcs_protection_3_4" smallint,
  "pcs_protection_3_5" smallint,
  "pcs_protection_3_6" smallint,
  "pcs_protection_3_7" smallint,
  "pcs_protection_3_8" smallint,
  "pcs_protection_3_9" smallint,
  "pcs_protection_3_10" smallint,
  "pcs_control_0" smallint,
  "set_power" real,
  "set_soc_low_trip_level" real,
  "set_soc_high_trip_level" real,
  "set_vbat_low_trip_level" real,
  "set_vbat_high_trip_level" real,
  "out_of_range" text[],
  PRIMARY KEY ("site_id", "bank_id", "ts")
);

SELECT create_hypertable('"pcs"', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS "etc" (
  "ts" timestamptz NOT NULL,
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "sensor1_temperature" real,
  "sensor1_humidity" real,
  "inv1_active_power" real,
  "inv1_cumulative_power_generation" integer,
  "out_of_range" text[],
  PRIMARY KEY ("site_id", "bank_id", "ts")
);

SELECT create_hypertable('"etc"', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS "frames" (
  "ts" timestamptz NOT NULL,
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "seq" bigint,
  "map_id" text,
  "map_version" smallint,
  "poll_us" integer,
  "published" timestamptz,
  "committed" timestamptz,
  "crc" integer,
  "failed" text[],
  "out_of_range" smallint,
  PRIMARY KEY ("site_id", "bank_id", "ts")
);

SELECT create_hypertable('"frames"', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS "data_status" (
  "day" date NOT NULL,
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "timezone" text,
  "expected" integer,
  "stored" integer,
  "completeness" double precision,
  "lost" integer,
  "resets" integer,
  "missed" integer,
  "failed_polls" integer,
  "failed" jsonb,
  "out_of_range" integer,
  "first_poll" timestamptz,
  "last_poll" timestamptz,
  "max_lag_s" double precision,
  "frozen_s" integer,
  "computed" timestamptz,
  PRIMARY KEY ("site_id", "bank_id", "day")
);

CREATE TABLE IF NOT EXISTS "events" (
  "site_id" text NOT NULL,
  "bank_id" smallint NOT NULL,
  "rack_id" smallint,
  "alarm" text NOT NULL,
  "severity" text NOT NULL,
  "since" timestamptz NOT NULL,
  "raised" timestamptz NOT NULL,
  "raised_value" double precision,
  "cleared" timestamptz,
  "cleared_value" double precision,
  CHECK (severity IN ('fault', 'warning')),
  CHECK (since <= raised AND (cleared IS NULL OR cleared > raised))
);

CREATE UNIQUE INDEX IF NOT EXISTS "events_episode" ON "events" (site_id, bank_id, alarm, (coalesce(rack_id, 0)), since);

CREATE INDEX IF NOT EXISTS "events_bank_cleared" ON "events" (site_id, bank_id, cleared);

CREATE INDEX IF NOT EXISTS "events_active" ON "events" (site_id, bank_id) WHERE cleared IS NULL;

DROP FUNCTION IF EXISTS ess_events_lock(integer[],text[],integer[],timestamp with time zone[],timestamp with time zone[],text[]);

CREATE OR REPLACE FUNCTION ess_events_lock(keys int[], sites text[],
    banks int[], lo timestamptz[], hi timestamptz[], steady text[])
RETURNS TABLE (site_id text, bank_id smallint, rack_id smallint, alarm text, severity text,
               since timestamptz, raised timestamptz, raised_value double precision,
               cleared timestamptz, cleared_value double precision, uncovered text)
LANGUAGE plpgsql VOLATILE SET jit = off AS $$
#variable_conflict use_column
DECLARE
  i int;
  st text[];
BEGIN
  PERFORM set_config('extra_float_digits', '1', true);
  PERFORM pg_advisory_xact_lock(4543316, k) FROM unnest(keys) AS k;
  FOR i IN 1 .. coalesce(array_length(sites, 1), 0) LOOP
    st := string_to_array(steady[i], ' ');
    RETURN QUERY
      SELECT e.site_id, e.bank_id, e.rack_id, e.alarm, e.severity, e.since, e.raised,
             e.raised_value, e.cleared, e.cleared_value, NULL::text
        FROM "events" e LEFT JOIN unnest(st) AS s(k)
          ON s.k = e.alarm || '/' || coalesce(e.rack_id, 0)
       WHERE e.site_id = sites[i] AND e.bank_id = banks[i] AND e.since <= hi[i]
         AND (e.cleared IS NULL OR e.cleared >= lo[i])
         AND NOT (s.k IS NOT NULL AND e.raised < lo[i]
                  AND (e.cleared IS NULL OR e.cleared > hi[i]));
    RETURN QUERY
      SELECT sites[i], banks[i]::smallint, NULL::smallint, NULL::text, NULL::text,
             NULL::timestamptz, NULL::timestamptz, NULL::float8, NULL::timestamptz,
             NULL::float8, coalesce(string_agg(s.k, ' '), '')
        FROM unnest(st) AS s(k) LEFT JOIN "events" e
          ON e.site_id = sites[i] AND e.bank_id = banks[i]
         AND e.alarm || '/' || coalesce(e.rack_id, 0) = s.k AND e.raised < lo[i]
         AND (e.cleared IS NULL OR e.cleared > hi[i])
       WHERE e.alarm IS NULL;
  END LOOP;
END $$;

COMMENT ON FUNCTION ess_events_lock(integer[],text[],integer[],timestamp with time zone[],timestamp with time zone[],text[]) IS 'ess events lock 8';
