-- delaydcttlog_v1_0_0_fact in the generated order; the modes are bound as a list ($modes)
insert into delaydcttlog_v1_0_0_fact
select e.ts, cast(s.subscription_id as varchar), s.tmuserid, e.cpc, ($modes)[e.mode + 1]
from cnr_arrow as e join subs as s on e.sub = s.sub
order by e.seq
