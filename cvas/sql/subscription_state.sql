-- The per-subscription aggregate state of the events in the input relations (act, reno, dct,
-- cnr, rfnd) dated on or before $as_of: what the subscription view (subscription_view.sql)
-- is computed from, and what two states are merged by (subscription_state_merge.sql).
-- Over every transaction file it is the full state as of $as_of; over the files of a few
-- days it is the part those days add. Every column merges exactly: minima, maxima, the value
-- at the least/greatest order key, sums (money in exact cents), first appearances.
--
-- Tie-breakers. The ACT and RENO rows of a subscription are totally ordered by `ord`:
--   trans_date, then ACT before RENO, then regular before UPGRADE, then a hash of the other
--   columns (cpc, channel, rev, act_date, camp_name, tmuserid, msisdn).
-- The hash only separates rows equal on (subscription_id, trans_date, kind): a key conflict
-- the loader keeps (decision D16); rows equal in every hashed column tie and give the same values.
-- "first" is the minimum of `ord`, "latest"/"current" the maximum. DCT ties: (trans_date,
-- channel_dct); CNR ties: (cancel_date, mode); the greatest wins, nulls last.
-- A subscription id seen only in DCT, CNR or RFND rows keeps a row (first_ord null): a
-- later ACT or RENO brings it into the view with those events. Order keys are kept as
-- DECIMAL(38, 0): exact in Parquet, where DuckDB would write a HUGEINT as a DOUBLE.

with

-- `not materialized`: DuckDB streams the rows into the aggregate rather than keeping them.

-- ACT and RENO rows on or before the as-of date, each with its order key
tx as not materialized (
    select
        subscription_id, tmuserid, msisdn, cpc, channel_act as channel, trans_date, act_date, camp_name, rev,
        0 as kind_rank,
        coalesce(channel_act = 'UPGRADE', false) as is_upgrade
    from act
    where trans_date < cast($as_of as date) + interval 1 day
      and subscription_id is not null
    union all
    select
        subscription_id, tmuserid, msisdn, cpc, channel_act, trans_date, act_date, camp_name, rev,
        1 as kind_rank,
        false as is_upgrade
    from reno
    where trans_date < cast($as_of as date) + interval 1 day
      and subscription_id is not null
),

-- a 128-bit key: (epoch µs, kind, upgrade) in the high word, the tie hash in the low word
ordered as not materialized (
    select
        *,
        ((epoch_us(trans_date) * 4 + kind_rank * 2 + cast(is_upgrade as int))::hugeint << 64)
            + hash(cpc, channel, rev, act_date, camp_name, tmuserid, msisdn)::hugeint as ord
    from tx
),

-- one pass over the rows, per (subscription, CPC): every aggregate below merges exactly, so the
-- subscription's are taken from its CPCs', and the first appearance of each CPC comes with them.
-- The activation is the earliest regular (non-UPGRADE; decision D2: a null channel is regular) ACT;
-- the upgrade charges are the UPGRADE ACTs (decision D4), so no ACT is counted twice. Money is
-- summed in exact cents.
per_cpc as (
    select
        subscription_id,
        cpc,
        min(ord) as first_ord,
        arg_min(struct_pack(tmuserid, msisdn, cpc, act_date, trans_date, camp_name, channel), ord) as first_tx,
        max(ord) as last_ord,
        min(ord) filter (where kind_rank = 0 and not is_upgrade) as act_ord,
        min(trans_date) filter (where kind_rank = 0 and not is_upgrade) as activation_trans_date,
        arg_min_null(rev, ord) filter (where kind_rank = 0 and not is_upgrade) as activation_rev,
        max(ord) filter (where is_upgrade) as upg_ord,
        max(trans_date) filter (where is_upgrade) as upgrade_date,
        sum(cast(rev as decimal(18, 2))) filter (where is_upgrade) as upgrade_revenue,
        count(*) filter (where kind_rank = 1) as renewal_count,
        sum(cast(rev as decimal(18, 2))) filter (where kind_rank = 1) as renewal_revenue,
        max(trans_date) filter (where kind_rank = 1) as last_renewal_date,
        min(trans_date) filter (where kind_rank = 1) as first_renewal_date
    from ordered
    group by subscription_id, cpc
),

-- per subscription: an order key belongs to one row, so the value at a least or greatest key is
-- that of the CPC holding it. `cpc_list` has the first appearance of each CPC met (kept in
-- `final` only for a subscription that met several: with one, it is first_cpc_ord).
per_subscription as (
    select
        subscription_id,
        min(first_ord) as first_ord,
        arg_min(first_tx, first_ord) as first_tx,
        max(last_ord) as last_ord,
        arg_max_null(cpc, last_ord) as current_cpc,
        min(cpc) as min_cpc,
        max(cpc) as max_cpc,
        min(first_ord) filter (where cpc is not null) as first_cpc_ord,
        min(act_ord) as act_ord,
        min(activation_trans_date) as activation_trans_date,
        arg_min_null(activation_rev, act_ord) filter (where act_ord is not null) as activation_rev,
        max(upg_ord) as upg_ord,
        max(upgrade_date) as upgrade_date,
        arg_max_null(cpc, upg_ord) filter (where upg_ord is not null) as upgraded_to_cpc,
        sum(upgrade_revenue) as upgrade_revenue,
        sum(renewal_count) as renewal_count,
        sum(renewal_revenue) as renewal_revenue,
        max(last_renewal_date) as last_renewal_date,
        min(first_renewal_date) as first_renewal_date,
        list(struct_pack(first_ord := cast(first_ord as decimal(38, 0)), cpc)) filter (where cpc is not null)
            as cpc_list
    from per_cpc
    group by subscription_id
),

-- the latest qualifying deactivation: a null channel_dct is a regular deactivation (decision D2)
deactivations as (
    select
        subscription_id,
        max({'trans_date': trans_date, 'channel_dct': channel_dct}) as latest_dct
    from dct
    where trans_date < cast($as_of as date) + interval 1 day
      and subscription_id is not null
      and coalesce(channel_dct <> 'UPGRADE', true)
    group by subscription_id
),

cancellations as (
    select
        sbn_id as subscription_id,
        max({'cancel_date': cancel_date, 'mode': mode}) as latest_cnr
    from cnr
    where cancel_date < cast($as_of as date) + interval 1 day
      and sbn_id is not null
    group by sbn_id
),

-- refund_count is the number of refunded charges, sum(rfnd_cnt) (decision D9)
refunds as (
    select
        sbnid as subscription_id,
        sum(rfnd_cnt) as refund_count,
        sum(cast(rfnd_amount as decimal(18, 2))) as total_refunded,
        max(refnd_date) as last_refund_date
    from rfnd
    where refnd_date < cast($as_of as date) + interval 1 day
      and sbnid is not null
    group by sbnid
),

final as (
    select
        subscription_id,
        cast(s.first_ord as decimal(38, 0)) as first_ord, s.first_tx,
        cast(s.last_ord as decimal(38, 0)) as last_ord, s.current_cpc, s.min_cpc, s.max_cpc,
        cast(s.first_cpc_ord as decimal(38, 0)) as first_cpc_ord,
        case when s.min_cpc <> s.max_cpc then list_sort(s.cpc_list) end as cpc_firsts,
        cast(s.act_ord as decimal(38, 0)) as act_ord, s.activation_trans_date, s.activation_rev,
        cast(s.upg_ord as decimal(38, 0)) as upg_ord, s.upgrade_date, s.upgraded_to_cpc, cast(s.upgrade_revenue as decimal(38, 2)) as upgrade_revenue,
        cast(s.renewal_count as bigint) as renewal_count, cast(s.renewal_revenue as decimal(38, 2)) as renewal_revenue,
        s.last_renewal_date, s.first_renewal_date,
        d.latest_dct, x.latest_cnr,
        cast(r.refund_count as decimal(38, 0)) as refund_count, cast(r.total_refunded as decimal(38, 2)) as total_refunded,
        r.last_refund_date
    from per_subscription as s
    full join deactivations as d using (subscription_id)
    full join cancellations as x using (subscription_id)
    full join refunds as r using (subscription_id)
)

select * from final
