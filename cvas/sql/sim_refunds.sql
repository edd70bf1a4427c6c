-- refund_v1_0_0_fact in the generated order; the reason texts are bound as lists ($auto_texts, $reasons)
insert into refund_v1_0_0_fact
select
    s.tmuserid, e.cpc, e.ts, cast(e.cents / 100 as decimal(10, 2)),
    case when e.no_sbn then '' else 'sbnId=' || cast(s.subscription_id as varchar) || ',' end
    || case when e.auto
            then 'reason=Charge error,' || ($auto_texts)[e.auto_text + 1]
            else 'reason=' || ($reasons)[e.reason + 1]
                 || case when e.no_sbn then ',ticket=' || cast(e.ticket as varchar) else '' end
       end
from refund_arrow as e join subs as s on e.sub = s.sub
order by e.seq
