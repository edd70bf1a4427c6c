-- The subscription lifecycle table as of the end of $as_of (legacy rule L8.3, 34 columns, with
-- decisions D2, D3, D4, D6, D9 and legacy rules L-D17/L-D18 fixed).
-- Input: `state`, the per-subscription aggregates as of $as_of (subscription_state.sql, built
-- from every transaction file or folded from an earlier state). Parameter: $as_of (DATE).
-- Only events dated on or before $as_of count (ACT/RENO/DCT by trans_date, CNR by
-- cancel_date, RFND by refnd_date); an event without a date counts in no as-of view.
-- Subscriptions enter the view with their first ACT or RENO (first_ord not null).
-- Rows come out in the order of `state` (a scan, a filter and projections: DuckDB keeps
-- the insertion order); the caller sorts them when `state` is not sorted by subscription_id.

with

joined as (
    select
        subscription_id,
        first_tx.tmuserid as tmuserid,
        first_tx.msisdn as msisdn,
        first_tx.cpc as first_cpc,
        current_cpc,
        min_cpc,
        max_cpc,
        list_transform(cpc_firsts, x -> x.cpc) as multi_cpc_list,
        first_tx.act_date as activation_date,
        first_tx.trans_date as first_trans_date,
        first_tx.camp_name as activation_campaign,
        first_tx.channel as activation_channel,
        activation_trans_date,
        upgrade_date,
        upgraded_to_cpc,
        coalesce(upgrade_revenue, 0) as upgrade_revenue,
        coalesce(renewal_count, 0) as renewal_count,
        coalesce(renewal_revenue, 0) as renewal_revenue,
        last_renewal_date,
        first_renewal_date,
        latest_dct.trans_date as deactivation_date,
        latest_dct.channel_dct as deactivation_mode,
        latest_cnr.cancel_date as cancellation_date,
        latest_cnr.mode as cancellation_mode,
        coalesce(refund_count, 0) as refund_count,
        coalesce(total_refunded, 0) as total_refunded,
        last_refund_date,
        coalesce(cast(activation_rev as decimal(18, 2)), 0) as activation_revenue
    from state
    where first_ord is not null
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
        -- the month of activation_date itself, so the two never disagree (legacy rule L-D17)
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
        -- decision D3: a qualifying DCT ends the subscription; a CNR alone is a pending request
        case
            when deactivation_date is not null then 'Deactivated'
            when cancellation_date is not null then 'Cancelled'
            else 'Active'
        end as subscription_status,
        -- decision D6: calendar-day boundaries to the end date, else to the as-of date
        date_diff('day', activation_date,
                  coalesce(deactivation_date, cancellation_date, cast($as_of as date))) as lifetime_days,
        coalesce(deactivation_date, cancellation_date) as end_date
    from joined
)

select * from final
