-- The part of the subscription view (and of its state) that a subscription's row lives in:
-- `deactivated-YYYY-MM`, the month of its qualifying deactivation, else `open` (Active and
-- Cancelled). A deactivated row no longer changes with the as-of date (its lifetime ends
-- at its deactivation), so a month's part is written once and carried over, by hard link,
-- to later views until an event of one of its subscriptions arrives. Only `open` and the
-- parts such events touch are rewritten each day: the daily cost follows the active base,
-- not the history.
create or replace temp macro subscription_part(latest_dct) as
    case
        when latest_dct is null then 'open'
        else 'deactivated-' || strftime(latest_dct.trans_date, '%Y-%m')
    end
