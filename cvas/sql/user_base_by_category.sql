-- user_base_by_category.csv (legacy rule L5.6): (date, tme_category) → User_Base. Input: kept.

with

final as (
    select date, tme_category, cast(sum(user_base) as bigint) as user_base
    from kept
    group by date, tme_category
)

select * from final
order by date, tme_category
