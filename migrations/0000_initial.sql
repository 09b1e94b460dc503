CREATE TYPE "public"."comic_status" AS ENUM('scripting', 'rendering', 'assembling', 'done', 'failed', 'cancelled');--> statement-breakpoint
CREATE TYPE "public"."model_family" AS ENUM('illustrious', 'noobai', 'flux');--> statement-breakpoint
CREATE TYPE "public"."nsfw_policy" AS ENUM('block', 'nsfw_channels_only');--> statement-breakpoint
CREATE TYPE "public"."page_status" AS ENUM('pending', 'rendering', 'assembling', 'done', 'failed');--> statement-breakpoint
CREATE TYPE "public"."render_status" AS ENUM('queued', 'running', 'done', 'failed', 'cancelled');--> statement-breakpoint
CREATE TYPE "public"."script_writer" AS ENUM('llm', 'template');--> statement-breakpoint
CREATE TYPE "public"."style_status" AS ENUM('training', 'voting', 'ready', 'retired');--> statement-breakpoint
CREATE TYPE "public"."training_kind" AS ENUM('style', 'character');--> statement-breakpoint
CREATE TYPE "public"."training_status" AS ENUM('preparing', 'queued', 'training', 'evaluating', 'voting', 'done', 'failed', 'cancelled');--> statement-breakpoint
CREATE TABLE "characters" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"guild_id" text NOT NULL,
	"name" text NOT NULL,
	"appearance" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"reference_image_keys" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"lora_artifact_key" text,
	"lora_trigger" text,
	"lora_strength" real,
	"owner_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "characters_name_not_empty" CHECK (length("characters"."name") > 0)
);
--> statement-breakpoint
CREATE TABLE "checkpoints" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"training_id" uuid NOT NULL,
	"epoch" integer NOT NULL,
	"step" integer NOT NULL,
	"artifact_key" text NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "checkpoints_training_epoch_unique" UNIQUE("training_id","epoch"),
	CONSTRAINT "checkpoints_training_id_unique" UNIQUE("training_id","id"),
	CONSTRAINT "checkpoints_epoch_step_non_negative" CHECK ("checkpoints"."epoch" >= 0 and "checkpoints"."step" >= 0)
);
--> statement-breakpoint
CREATE TABLE "comics" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"guild_id" text,
	"channel_id" text,
	"user_id" text NOT NULL,
	"prompt" text NOT NULL,
	"options" jsonb NOT NULL,
	"script" jsonb,
	"writer" "script_writer",
	"status" "comic_status" DEFAULT 'scripting' NOT NULL,
	"error" text,
	"status_message_id" text,
	"storyboard_message_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "comics_prompt_not_empty" CHECK (length("comics"."prompt") > 0),
	CONSTRAINT "comics_script_has_writer" CHECK ("comics"."script" is null or "comics"."writer" is not null)
);
--> statement-breakpoint
CREATE TABLE "guild_settings" (
	"guild_id" text PRIMARY KEY NOT NULL,
	"default_style" text,
	"default_model_family" "model_family" DEFAULT 'illustrious' NOT NULL,
	"default_pages" integer DEFAULT 1 NOT NULL,
	"default_panels_per_page" integer DEFAULT 4 NOT NULL,
	"default_rtl" boolean DEFAULT false NOT NULL,
	"max_in_flight_per_user" integer DEFAULT 1 NOT NULL,
	"max_in_flight_per_guild" integer DEFAULT 3 NOT NULL,
	"test_prompts" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"nsfw_policy" "nsfw_policy" DEFAULT 'block' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "guild_settings_limits_positive" CHECK ("guild_settings"."max_in_flight_per_user" >= 1 and "guild_settings"."max_in_flight_per_guild" >= 1),
	CONSTRAINT "guild_settings_default_pages_range" CHECK ("guild_settings"."default_pages" between 1 and 8),
	CONSTRAINT "guild_settings_default_panels_range" CHECK ("guild_settings"."default_panels_per_page" between 1 and 6)
);
--> statement-breakpoint
CREATE TABLE "pages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"comic_id" uuid NOT NULL,
	"number" integer NOT NULL,
	"layout" jsonb,
	"status" "page_status" DEFAULT 'pending' NOT NULL,
	"artifact_key" text,
	"discord_message_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "pages_comic_number_unique" UNIQUE("comic_id","number"),
	CONSTRAINT "pages_number_positive" CHECK ("pages"."number" >= 1)
);
--> statement-breakpoint
CREATE TABLE "panels" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"comic_id" uuid NOT NULL,
	"page_number" integer NOT NULL,
	"panel_number" integer NOT NULL,
	"script_panel" jsonb NOT NULL,
	"current_render_id" uuid,
	"discord_message_id" text,
	"reroll_pending" boolean DEFAULT false NOT NULL,
	"reroll_count" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "panels_comic_page_panel_unique" UNIQUE("comic_id","page_number","panel_number"),
	CONSTRAINT "panels_numbers_positive" CHECK ("panels"."page_number" >= 1 and "panels"."panel_number" >= 1),
	CONSTRAINT "panels_reroll_count_non_negative" CHECK ("panels"."reroll_count" >= 0)
);
--> statement-breakpoint
CREATE TABLE "renders" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"panel_id" uuid NOT NULL,
	"attempt" integer NOT NULL,
	"recipe" jsonb NOT NULL,
	"status" "render_status" DEFAULT 'queued' NOT NULL,
	"artifact_key" text,
	"runner_id" text,
	"queued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"error" text,
	CONSTRAINT "renders_panel_attempt_unique" UNIQUE("panel_id","attempt"),
	CONSTRAINT "renders_attempt_non_negative" CHECK ("renders"."attempt" >= 0),
	CONSTRAINT "renders_done_has_artifact" CHECK ("renders"."status" <> 'done' or "renders"."artifact_key" is not null)
);
--> statement-breakpoint
CREATE TABLE "styles" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"guild_id" text NOT NULL,
	"name" text NOT NULL,
	"trigger" text NOT NULL,
	"model_family" "model_family" NOT NULL,
	"lora_artifact_key" text,
	"checkpoint_id" uuid,
	"status" "style_status" DEFAULT 'training' NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "styles_ready_has_lora" CHECK ("styles"."status" <> 'ready' or "styles"."lora_artifact_key" is not null)
);
--> statement-breakpoint
CREATE TABLE "trainings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"guild_id" text NOT NULL,
	"channel_id" text NOT NULL,
	"user_id" text NOT NULL,
	"kind" "training_kind" NOT NULL,
	"name" text NOT NULL,
	"trigger" text NOT NULL,
	"model_family" "model_family" NOT NULL,
	"base_model" text NOT NULL,
	"config" jsonb NOT NULL,
	"status" "training_status" DEFAULT 'preparing' NOT NULL,
	"progress" jsonb,
	"dataset_key" text,
	"error" text,
	"voting_closes_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "votes" (
	"training_id" uuid NOT NULL,
	"member_id" text NOT NULL,
	"checkpoint_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "votes_pkey" PRIMARY KEY("training_id","member_id")
);
--> statement-breakpoint
ALTER TABLE "checkpoints" ADD CONSTRAINT "checkpoints_training_id_trainings_id_fk" FOREIGN KEY ("training_id") REFERENCES "public"."trainings"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pages" ADD CONSTRAINT "pages_comic_id_comics_id_fk" FOREIGN KEY ("comic_id") REFERENCES "public"."comics"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "panels" ADD CONSTRAINT "panels_comic_id_comics_id_fk" FOREIGN KEY ("comic_id") REFERENCES "public"."comics"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "panels" ADD CONSTRAINT "panels_current_render_id_renders_id_fk" FOREIGN KEY ("current_render_id") REFERENCES "public"."renders"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "panels" ADD CONSTRAINT "panels_page_fk" FOREIGN KEY ("comic_id","page_number") REFERENCES "public"."pages"("comic_id","number") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "renders" ADD CONSTRAINT "renders_panel_id_panels_id_fk" FOREIGN KEY ("panel_id") REFERENCES "public"."panels"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "styles" ADD CONSTRAINT "styles_checkpoint_id_checkpoints_id_fk" FOREIGN KEY ("checkpoint_id") REFERENCES "public"."checkpoints"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "votes" ADD CONSTRAINT "votes_training_id_trainings_id_fk" FOREIGN KEY ("training_id") REFERENCES "public"."trainings"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "votes" ADD CONSTRAINT "votes_checkpoint_fk" FOREIGN KEY ("training_id","checkpoint_id") REFERENCES "public"."checkpoints"("training_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "characters_guild_name_unique" ON "characters" USING btree ("guild_id",lower("name"));--> statement-breakpoint
CREATE INDEX "comics_guild_user_status_idx" ON "comics" USING btree ("guild_id","user_id","status");--> statement-breakpoint
CREATE INDEX "comics_guild_status_idx" ON "comics" USING btree ("guild_id","status");--> statement-breakpoint
CREATE INDEX "comics_status_updated_idx" ON "comics" USING btree ("status","updated_at");--> statement-breakpoint
CREATE UNIQUE INDEX "panels_discord_message_unique" ON "panels" USING btree ("discord_message_id");--> statement-breakpoint
CREATE INDEX "panels_current_render_idx" ON "panels" USING btree ("current_render_id");--> statement-breakpoint
CREATE INDEX "renders_status_queued_idx" ON "renders" USING btree ("status","queued_at");--> statement-breakpoint
CREATE UNIQUE INDEX "styles_guild_name_unique" ON "styles" USING btree ("guild_id",lower("name"));--> statement-breakpoint
CREATE INDEX "trainings_guild_status_idx" ON "trainings" USING btree ("guild_id","status");--> statement-breakpoint
CREATE INDEX "trainings_status_closes_idx" ON "trainings" USING btree ("status","voting_closes_at");--> statement-breakpoint
CREATE INDEX "votes_checkpoint_idx" ON "votes" USING btree ("checkpoint_id");