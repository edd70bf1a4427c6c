-- The subscription lifecycle table as of the end of $as_of (LEGACY §8.3, 34 columns, with
-- DESIGN D2, D3, D4, D6, D9 and LEGACY D-17/D-18 fixed).
-- Inputs (views made by cvas.subscriptions over the transaction Parquet files): act, reno,
-- dct, cnr, rfnd. Parameter: $as_of (DATE). Only events dated on or before $as_of count
-- (ACT/RENO/DCT by trans_date, CNR by cancel_date, RFND by refnd_date); an event without a
-- date cannot be placed in time and counts in no as-of view.
--
-- Tie-breakers. The ACT and RENO rows of a subscription are totally ordered by `ord`:
--   trans_date, then ACT before RENO, then regular before UPGRADE, then a hash of the other
--   columns (cpc, channel, rev, act_date, camp_name, tmuserid, msisdn).
-- The hash only separates rows equal on (subscription_id, trans_date, kind), which the
-- loader already makes unique (its dedup key, and a day file holds only that day's rows);
-- it keeps the choice deterministic regardless.
-- "first" is the minimum of `ord`, "latest"/"current" the maximum. DCT ties: (trans_date,
-- channel_dct); CNR ties: (cancel_date, mode); the greatest wins, nulls last.

with

-- ACT and RENO rows on or before the as-of date, each with its order key
tx as (
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
ordered as (
    select
        *,
        ((epoch_us(trans_date) * 4 + kind_rank * 2 + cast(is_upgrade as int))::hugeint << 64)
            + hash(cpc, channel, rev, act_date, camp_name, tmuserid, msisdn)::hugeint as ord
    from tx
),

-- one pass per subscription over fixed-width values (fast). The activation is the
-- earliest regular (non-UPGRADE; D2: a null channel is regular) ACT; the upgrade charges
-- are the UPGRADE ACTs (D4), so no ACT is counted twice. Money is summed in exact cents.
per_subscription as (
    select
        subscription_id,
        min(ord) as first_ord,
        arg_max_null(cpc, ord) as current_cpc,
        min(cpc) as min_cpc,
        max(cpc) as max_cpc,
        min(trans_date) filter (where kind_rank = 0 and not is_upgrade) as activation_trans_date,
        arg_min_null(rev, ord) filter (where kind_rank = 0 and not is_upgrade) as activation_rev,
        max(trans_date) filter (where is_upgrade) as upgrade_date,
        arg_max_null(cpc, ord) filter (where is_upgrade) as upgraded_to_cpc,
        coalesce(sum(cast(rev as decimal(18, 2))) filter (where is_upgrade), 0) as upgrade_revenue,
        count(*) filter (where kind_rank = 1) as renewal_count,
        coalesce(sum(cast(rev as decimal(18, 2))) filter (where kind_rank = 1), 0) as renewal_revenue,
        max(trans_date) filter (where kind_rank = 1) as last_renewal_date,
        min(trans_date) filter (where kind_rank = 1) as first_renewal_date
    from ordered
    group by subscription_id
),

-- the first transaction itself (its text columns), fetched back by its key
first_tx as (
    select o.subscription_id, o.tmuserid, o.msisdn, o.cpc, o.act_date, o.trans_date, o.camp_name, o.channel
    from ordered as o
    inner join per_subscription as s on s.subscription_id = o.subscription_id and s.first_ord = o.ord
),

-- cpc_list for subscriptions that met several CPCs: distinct CPCs by first appearance.
-- With a single CPC the list is [cpc], built in `final` without this step.
multi_cpc_lists as (
    select
        subscription_id,
        list_transform(list_sort(list({'first_ord': first_ord, 'cpc': cpc})), x -> x.cpc) as cpc_list
    from (
        select o.subscription_id, o.cpc, min(o.ord) as first_ord
        from ordered as o
        semi join (select subscription_id from per_subscription where min_cpc <> max_cpc) as m
            on m.subscription_id = o.subscription_id
        where o.cpc is not null
        group by o.subscription_id, o.cpc
    )
    group by subscription_id
),

-- the latest qualifying deactivation: a null channel_dct is a regular deactivation (D2)
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

-- refund_count is the number of refunded charges, sum(rfnd_cnt) (D9)
refunds as (
    select
        sbnid as subscription_id,
        coalesce(sum(rfnd_cnt), 0) as refund_count,
        coalesce(sum(cast(rfnd_amount as decimal(18, 2))), 0) as total_refunded,
        max(refnd_date) as last_refund_date
    from rfnd
    where refnd_date < cast($as_of as date) + interval 1 day
      and sbnid is not null
    group by sbnid
),

joined as (
    select
        s.*,
        f.tmuserid,
        f.msisdn,
        f.cpc as first_cpc,
        f.act_date as activation_date,
        f.trans_date as first_trans_date,
        f.camp_name as activation_campaign,
        f.channel as activation_channel,
        m.cpc_list as multi_cpc_list,
        d.latest_dct.trans_date as deactivation_date,
        d.latest_dct.channel_dct as deactivation_mode,
        x.latest_cnr.cancel_date as cancellation_date,
        x.latest_cnr.mode as cancellation_mode,
        coalesce(r.refund_count, 0) as refund_count,
        coalesce(r.total_refunded, 0) as total_refunded,
        r.last_refund_date,
        coalesce(cast(s.activation_rev as decimal(18, 2)), 0) as activation_revenue
    from per_subscription as s
    inner join first_tx as f on f.subscription_id = s.subscription_id
    left join multi_cpc_lists as m on m.subscription_id = s.subscription_id
    left join deactivations as d on d.subscription_id = s.subscription_id
    left join cancellations as x on x.subscription_id = s.subscription_id
    left join refunds as r on r.subscription_id = s.subscription_id
),

final as (
    select
        subscription_id,
        tmuserid,
        msisdn,
        case
            when min_cpc is null then []::bigint[]
            when min_cpc = max_cpc then [min_cpc]
            else multi_cpc_list
        end as cpc_list,
        cast(case when min_cpc is null then 0 when min_cpc = max_cpc then 1 else len(multi_cpc_list) end
             as bigint) as cpc_count,
        first_cpc,
        current_cpc,
        upgrade_date is not null as has_upgraded,
        upgrade_date,
        upgraded_to_cpc,
        activation_date,
        coalesce(activation_trans_date, first_trans_date) as activation_trans_date,
        activation_trans_date is null as missing_act_record,
        activation_campaign,
        activation_channel,
        cast(activation_revenue as double) as activation_revenue,
        -- the month of activation_date itself, so the two never disagree (D-17)
        strftime(activation_date, '%Y-%m') as activation_month,
        renewal_count,
        cast(renewal_revenue as double) as renewal_revenue,
        last_renewal_date,
        first_renewal_date,
        coalesce(last_renewal_date, activation_date) as last_activity_date,
        deactivation_date,
        deactivation_mode,
        cancellation_date,
        cancellation_mode,
        cast(refund_count as bigint) as refund_count,
        cast(total_refunded as double) as total_refunded,
        last_refund_date,
        cast(activation_revenue + renewal_revenue as double) as total_revenue,
        cast(activation_revenue + renewal_revenue + upgrade_revenue as double) as total_revenue_with_upgrade,
        -- D3: a qualifying DCT ends the subscription; a CNR alone is a pending request
        case
            when deactivation_date is not null then 'Deactivated'
            when cancellation_date is not null then 'Cancelled'
            else 'Active'
        end as subscription_status,
        -- D6: calendar-day boundaries to the end date, else to the as-of date
        date_diff('day', activation_date,
                  coalesce(deactivation_date, cancellation_date, cast($as_of as date))) as lifetime_days,
        coalesce(deactivation_date, cancellation_date) as end_date
    from joined
)

select * from final
order by subscription_id
