-- sim_subscription, the truth the user-base snapshot is drawn from, in the generated order; the NBS
-- channel_desc vocabulary is bound as a list ($channels)
insert into sim_subscription
select s.subscription_id, s.tmuserid, s.phone, e.cpc, e.start_ts, e.end_ts,
       ($channels)[e.chan + 1], cast(e.cents / 100 as decimal(10, 2))
from segments_arrow as e join subs as s on e.sub = s.sub
order by e.seq
