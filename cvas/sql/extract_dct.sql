-- DCT: deactivations (trans_type_id 3), incl. the DCT an upgrade writes on the free CPC
-- (channel UPGRADE), in the half-open window [start_ts, end_ts) on tlog_ts. 13 columns:
-- channel_dct instead of channel_id/channel_act, no rev. legacy rules L2.3, L2.4, L2.5.
with

transactions as (
    select * from telefonicaes_sub_mgr_fact
    where trans_type_id = 3
      and tlog_ts >= cast(:'start_ts' as timestamp)
      and tlog_ts < cast(:'end_ts' as timestamp)
),

channels as (
    select channel_id, channel_desc from channel_dim
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
        chnl.channel_desc as channel_dct,
        ft.tlog_ts as trans_date,
        ft.request_ts as act_date,
        ft.next_charging_date as reno_date,
        split_part(split_part(';' || ft.generic_act_info, ';campaign=', 2), ';', 1) as camp_name,
        split_part(split_part(';' || ft.generic_act_info, ';TEFProvider=', 2), ';', 1) as tef_prov,
        split_part(split_part(';' || ft.generic_act_info, ';TEFmedium=', 2), ';', 1) as campana_medium,
        split_part(split_part(';' || ft.generic_act_info, ';TEFcampaign=', 2), ';', 1) as campana_id,
        ft.subscription_id
    from transactions as ft
    left join channels as chnl on ft.channel_id = chnl.channel_id
)

select * from final
order by
    trans_date, subscription_id, tmuserid, msisdn, cpc, channel_dct, act_date, reno_date,
    camp_name, tef_prov, campana_medium, campana_id
