-- PPD: pay-per-download one-off purchases (trans_type_id 4; subscription_id may be null),
-- in the half-open window [start_ts, end_ts) on tlog_ts. 14 columns: channel_id but no
-- channel text (the legacy joined channel_dim and selected nothing from it). legacy rules L2.3, L2.4, L2.5.
with

transactions as (
    select * from telefonicaes_sub_mgr_fact
    where trans_type_id = 4
      and tlog_ts >= cast(:'start_ts' as timestamp)
      and tlog_ts < cast(:'end_ts' as timestamp)
),

-- generic_act_info is 'key=value;key=value;...' in any order. Searching ';key=' in
-- ';' || info anchors each key at a field start, so 'campaign=' no longer matches inside
-- 'TEFcampaign=' (fixes legacy rule L-D24). An absent key gives '' as in the legacy.
final as (
    select
        ft.msisdn as tmuserid,
        split_part(split_part(';' || ft.generic_act_info, ';chrg_refid=', 2), ';', 1) as msisdn,
        split_part(split_part(';' || ft.generic_act_info, ';cpc=', 2), ';', 1) as cpc,
        ft.trans_type_id,
        ft.channel_id,
        ft.tlog_ts as trans_date,
        ft.request_ts as act_date,
        ft.next_charging_date as reno_date,
        split_part(split_part(';' || ft.generic_act_info, ';campaign=', 2), ';', 1) as camp_name,
        split_part(split_part(';' || ft.generic_act_info, ';TEFProvider=', 2), ';', 1) as tef_prov,
        split_part(split_part(';' || ft.generic_act_info, ';TEFmedium=', 2), ';', 1) as campana_medium,
        split_part(split_part(';' || ft.generic_act_info, ';TEFcampaign=', 2), ';', 1) as campana_id,
        ft.subscription_id,
        ft.charged_amount as rev
    from transactions as ft
)

select * from final
order by
    trans_date, subscription_id, tmuserid, msisdn, cpc, channel_id, act_date, reno_date,
    camp_name, tef_prov, campana_medium, campana_id, rev
