-- The simulated Nova's identities (temp table subs): tmuserid, phone and the parts of generic_act_info
-- each identity's transactions carry; the vocabularies are bound as lists ($campaigns, $providers, $media).
create temp table subs as
select
    sub, subscription_id,
    case tm_kind when 0 then '834' else '34' end || lpad(cast(tm16 as varchar), 16, '0') as tmuserid,
    '346' || lpad(cast(phone8 as varchar), 8, '0') as phone,
    variant,
    'chrg_refid=346' || lpad(cast(phone8 as varchar), 8, '0') as p_ref,
    case when has_camp then 'campaign=' || campaign end as p_camp,
    case when has_prov then 'TEFProvider=' || provider end as p_prov,
    case when has_medium then 'TEFmedium=' || medium end as p_medium,
    case when has_tefcamp then 'TEFcampaign=tc' || cast(tefcamp as varchar) end as p_tefcamp
from (
    select *,
        ($campaigns)[camp + 1] as campaign,
        ($providers)[prov + 1] as provider,
        ($media)[med + 1] as medium
    from ident_arrow
)
