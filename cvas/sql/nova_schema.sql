-- The Nova source tables the extracts read (legacy rule L2.2), with their real column names
-- and types, plus the simulator's own tables (sim_*). Runs on DuckDB and PostgreSQL 15.

create table telefonicaes_sub_mgr_fact (
    msisdn text,                      -- the platform user id (tmuserid), not the phone
    generic_act_info text,            -- 'key=value;key=value', keys in any order, some absent
    trans_type_id integer,            -- 1 act, 2 reno, 3 dct, 4 ppd
    channel_id integer,
    tlog_ts timestamp,
    request_ts timestamp,
    next_charging_date timestamp,
    subscription_id bigint,
    charged_amount numeric(10, 2)
);

create table channel_dim (
    channel_id integer,
    channel_desc text
);

-- the delayed-deactivation log: the CNR source
create table delaydcttlog_v1_0_0_fact (
    "timestamp" timestamp,
    sbn_id text,
    msisdn text,
    cpc bigint,
    mode text
);

create table refund_v1_0_0_fact (
    msisdn text,
    cpc bigint,
    "timestamp" timestamp,
    amount numeric(10, 2),
    info text                         -- 'sbnId=<id>,reason=...[,Automatic Refund]'
);

-- simulator only: the catalogue the NBS snapshot names services from (a superset of the
-- Excel master: it also holds the CPCs the master lacks)
create table sim_cpc (
    cpc bigint,
    content_provider text,
    service_name text,
    tme_category text,
    subscription_model text,
    cpc_period integer,
    price numeric(10, 2),
    in_master boolean
);

-- simulator only: the truth, one row per subscription and CPC segment (an upgrade closes
-- the free segment and opens the paid one); end_ts null = still active after the window
create table sim_subscription (
    subscription_id bigint,
    tmuserid text,
    msisdn text,
    cpc bigint,
    start_ts timestamp,
    end_ts timestamp,
    channel_desc text,
    last_billed_amount numeric(10, 2)
);

-- simulator only: what was simulated (one row)
create table sim_meta (
    start_date date,
    end_date date,
    days integer,
    seed bigint,
    new_per_day integer,
    generator text
)
