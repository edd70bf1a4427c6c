-- user_base_by_service.csv (legacy rule L5.6): (date, service_name, tme_category) → User_Base.
-- Input: kept (user_base_kept.sql). Binary collation = Python code-point order.

with

final as (
    select date, service_name, tme_category, cast(sum(user_base) as bigint) as user_base
    from kept
    group by date, service_name, tme_category
)

select * from final
order by date, service_name, tme_category
