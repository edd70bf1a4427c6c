-- user_base_by_cpc.csv (legacy rule L5.6): (date, cpc) → User_Base, cpc in numeric order. Input: kept.

with

final as (
    select date, cpc, cast(sum(user_base) as bigint) as user_base
    from kept
    group by date, cpc
)

select * from final
order by date, cpc
