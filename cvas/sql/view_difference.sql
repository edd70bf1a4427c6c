-- The first subscription whose row differs between two subscription views (`published` and
-- `reference`, the same 34 columns), with the names of the columns that differ; a
-- subscription present in one view only is reported with `only_in`. No row when the two
-- hold the same rows and values.

with

joined as (
    select
        coalesce(p.subscription_id, r.subscription_id) as subscription_id,
        case when p.subscription_id is null then 'reference' when r.subscription_id is null then 'published' end
            as only_in,
        p as p_row,
        r as r_row
    from published as p
    full join reference as r on r.subscription_id = p.subscription_id
),

final as (
    select subscription_id, only_in, p_row, r_row
    from joined
    where p_row is distinct from r_row
)

select * from final
order by subscription_id
limit 1
