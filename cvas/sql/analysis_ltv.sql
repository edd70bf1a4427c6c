-- calculate_lt_ltv (legacy rule L11): per activation month, the subscriptions on any CPC of a service,
-- their mean lifetime and mean LTV (total_revenue_with_upgrade, decision D4).
-- Inputs: subscriptions (the view), $months (activation months), $cpcs (the service's CPCs).

with

chosen as (
    select activation_month, lifetime_days, total_revenue_with_upgrade
    from subscriptions
    where list_contains($months::varchar[], activation_month)
      and list_has_any(cpc_list, $cpcs::bigint[])
),

final as (
    select
        activation_month,
        count(*) as subscriptions,
        avg(lifetime_days) as avg_lifetime_days,
        avg(total_revenue_with_upgrade) as avg_ltv
    from chosen
    group by activation_month
)

select * from final
order by activation_month
