-- Per-subscription totals of a timeline (legacy rule L11): rows per kind, revenue, refunds.
-- Input: timeline (the result of query_timeline.sql).

with

final as (
    select
        subscription_id,
        count(*) filter (where transaction_type = 'ACT') as act_rows,
        count(*) filter (where transaction_type = 'RENO') as reno_rows,
        count(*) filter (where transaction_type = 'DCT') as dct_rows,
        count(*) filter (where transaction_type = 'CNR') as cnr_rows,
        count(*) filter (where transaction_type = 'RFND') as rfnd_rows,
        cast(coalesce(sum(rfnd_cnt), 0) as bigint) as refunded_charges,
        cast(coalesce(sum(cast(rev as decimal(18, 2))), 0) as double) as revenue,
        cast(coalesce(sum(cast(rfnd_amount as decimal(18, 2))), 0) as double) as refunded
    from timeline
    group by subscription_id
)

select * from final
order by subscription_id
