-- generic_act_info of each identity's two CPC slots (its first CPC, its upgrade), in four key orders;
-- order 1 puts TEFcampaign= before campaign= (legacy rule L-D24)
select
    case s.variant
        when 0 then concat_ws(';', s.p_ref, 'cpc=' || k.cpc, s.p_camp, s.p_prov, s.p_medium, s.p_tefcamp)
        when 1 then concat_ws(';', 'cpc=' || k.cpc, s.p_ref, s.p_tefcamp, s.p_camp, s.p_medium, s.p_prov)
        when 2 then concat_ws(';', s.p_prov, s.p_medium, s.p_tefcamp, s.p_ref, 'cpc=' || k.cpc, s.p_camp)
        else concat_ws(';', 'cpc=' || k.cpc, s.p_tefcamp, s.p_ref, s.p_prov, s.p_camp, s.p_medium)
    end as info
from subs as s
join (select sub, 0 as slot, cast(cpc_a as varchar) as cpc from slots_arrow
      union all select sub, 1 as slot, cast(cpc_b as varchar) as cpc from slots_arrow) as k on s.sub = k.sub
order by k.sub, k.slot
