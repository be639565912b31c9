-- A session raised by a step-up that named an action is good for that
-- action only (NULL: a login or a general step-up, good for any action).
ALTER TABLE sessions ADD COLUMN step_up_action TEXT;
