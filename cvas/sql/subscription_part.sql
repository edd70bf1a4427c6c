-- The part of the subscription view (and of its state) that a subscription's row lives in:
-- `deactivated-YYYY-MM`, the month of its qualifying deactivation, else `open-K` (Active and
-- Cancelled), K = subscription_id mod 4 (OPEN_PARTS in cvas/steps/subscriptions.py). A
-- deactivated row no longer changes with the as-of date (its lifetime ends at its
-- deactivation), so a month's part is written once and carried over, by hard link, to later
-- views until an event of one of its subscriptions arrives. The open parts are rewritten
-- each day (lifetime_days of an active row grows), in four so that each one's sort is a
-- quarter of the active base: the daily cost follows the active base, not the history, and
-- its memory a quarter of it per part being written. The buckets are plain arithmetic on the
-- id, so they never move between versions.
create or replace temp macro subscription_part(latest_dct, subscription_id) as
    case
        when latest_dct is null then 'open-' || cast(((subscription_id % 4) + 4) % 4 as varchar)
        else 'deactivated-' || strftime(latest_dct.trans_date, '%Y-%m')
    end
