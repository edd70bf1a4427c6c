-- One subscription state from two (subscription_state.sql): `prev_state`, the state as of an
-- earlier day, and `new_state`, what the days after it add. Every column merges exactly, so
-- the result equals the state built from all the days at once. It holds the subscriptions the
-- new days touch; the caller carries the others over as they are (their rows of prev_state
-- anti-joined with new_state).

with

touched as (
    select p.* from prev_state as p semi join new_state as n on n.subscription_id = p.subscription_id
),

both_parts as (
    select * from touched
    union all
    select * from new_state
),

merged as (
    select
        subscription_id,
        min(first_ord) as first_ord,
        arg_min(first_tx, first_ord) as first_tx,
        max(last_ord) as last_ord,
        arg_max_null(current_cpc, last_ord) filter (where last_ord is not null) as current_cpc,
        min(min_cpc) as min_cpc,
        max(max_cpc) as max_cpc,
        min(first_cpc_ord) as first_cpc_ord,
        min(act_ord) as act_ord,
        min(activation_trans_date) as activation_trans_date,
        arg_min_null(activation_rev, act_ord) filter (where act_ord is not null) as activation_rev,
        max(upg_ord) as upg_ord,
        max(upgrade_date) as upgrade_date,
        arg_max_null(upgraded_to_cpc, upg_ord) filter (where upg_ord is not null) as upgraded_to_cpc,
        cast(sum(upgrade_revenue) as decimal(38, 2)) as upgrade_revenue,
        cast(sum(renewal_count) as bigint) as renewal_count,
        cast(sum(renewal_revenue) as decimal(38, 2)) as renewal_revenue,
        max(last_renewal_date) as last_renewal_date,
        min(first_renewal_date) as first_renewal_date,
        max(latest_dct) as latest_dct,
        max(latest_cnr) as latest_cnr,
        cast(sum(refund_count) as decimal(38, 0)) as refund_count,
        cast(sum(total_refunded) as decimal(38, 2)) as total_refunded,
        max(last_refund_date) as last_refund_date
    from both_parts
    group by subscription_id
),

-- the first appearance of each CPC, over both parts, for subscriptions that now met several
merged_cpc_firsts as (
    select subscription_id, list_sort(list(struct_pack(first_ord, cpc))) as cpc_firsts
    from (
        select subscription_id, e.cpc as cpc, min(e.first_ord) as first_ord
        from (
            select
                b.subscription_id,
                unnest(coalesce(b.cpc_firsts, [struct_pack(first_ord := b.first_cpc_ord, cpc := b.min_cpc)])) as e
            from both_parts as b
            semi join (select subscription_id from merged where min_cpc <> max_cpc) as m
                on m.subscription_id = b.subscription_id
            where b.min_cpc is not null
        )
        group by subscription_id, e.cpc
    )
    group by subscription_id
),

final as (
    select
        m.subscription_id,
        m.first_ord, m.first_tx, m.last_ord, m.current_cpc, m.min_cpc, m.max_cpc, m.first_cpc_ord,
        c.cpc_firsts,
        m.act_ord, m.activation_trans_date, m.activation_rev,
        m.upg_ord, m.upgrade_date, m.upgraded_to_cpc, m.upgrade_revenue,
        m.renewal_count, m.renewal_revenue, m.last_renewal_date, m.first_renewal_date,
        m.latest_dct, m.latest_cnr, m.refund_count, m.total_refunded, m.last_refund_date
    from merged as m
    left join merged_cpc_firsts as c using (subscription_id)
)

select * from final
